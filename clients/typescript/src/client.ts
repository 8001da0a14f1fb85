// The typed Nexus API client: openapi-fetch over the types that openapi-typescript generates
// from ../../openapi.json (nexus-api.d.ts). Nothing here is written by hand about the wire
// format: every path, parameter, body and response type comes from the generated file, so a
// backend change that breaks the frontend breaks `npm run check` first.
import createClient, {
  type Client,
  type ClientPathsWithMethod,
  type FetchResponse,
  type MaybeOptionalInit,
  type Middleware,
  type ParseAs,
} from "openapi-fetch";
import type { components, paths } from "../nexus-api";

export type { components, paths };

/** Any schema of the OpenAPI document by name, e.g. `Schema<"StoreCreate">`. */
export type Schema<Name extends keyof components["schemas"]> = components["schemas"][Name];

// Auth
export type User = Schema<"User">;
export type SignIn = Schema<"SignIn">;
export type Tokens = Schema<"Tokens">;
export type CodeRequest = Schema<"CodeRequest">;
export type CodeVerify = Schema<"CodeVerify">;
// Stores and products
export type Store = Schema<"Store">;
export type StorePage = Schema<"StorePage">;
export type StoreCreate = Schema<"StoreCreate">;
export type Product = Schema<"Product">;
export type ProductPage = Schema<"ProductPage">;
export type ProductCreate = Schema<"ProductCreate">;
export type ProductUpdate = Schema<"ProductUpdate">;
/** The catalog's filters, sort and paging: the query of `GET /api/v1/products`. */
export type ProductFilters = NonNullable<paths["/api/v1/products"]["get"]["parameters"]["query"]>;
// Orders and payments
export type Order = Schema<"Order">;
export type OrderItem = Schema<"OrderItem">;
export type OrderPage = Schema<"OrderPage">;
export type OrderLine = Schema<"OrderLine">;
export type OrderCreate = Schema<"OrderCreate">;
export type ShippingAddress = Schema<"ShippingAddress">;
export type ShippingAddressCreate = Schema<"ShippingAddressCreate">;
export type OrderStatus = Order["status"];
export type Payment = Schema<"Payment">;
export type PaymentStart = Schema<"PaymentStart">;
// Reports
export type Report = Schema<"Report">;
export type ReportPage = Schema<"ReportPage">;
export type ReportCreate = Schema<"ReportCreate">;
/** The one error shape every endpoint answers: `{code, status, message, errors?}`. */
export type ApiError = Schema<"Error">;

type Method = "get" | "post" | "put" | "patch" | "delete";
type PathWith<M extends Method> = ClientPathsWithMethod<Client<paths>, M>;
type MediaType = `${string}/${string}`;
/** What one call takes besides its path: params (path, query, header), body, parseAs, fetch options. */
type InitOf<P extends PathWith<M>, M extends Method, K extends ParseAs> = NonNullable<
  MaybeOptionalInit<paths[P], M>
> & { parseAs?: K };
type InitArgs<P extends PathWith<M>, M extends Method, K extends ParseAs> =
  undefined extends MaybeOptionalInit<paths[P], M> ? [init?: InitOf<P, M, K>] : [init: InitOf<P, M, K>];

/**
 * One HTTP method of the client. Unlike openapi-fetch's own signature, where the whole init
 * object is a type parameter inferred from the call (so a misspelt *optional* field such as
 * `notes` instead of `note` type-checks and only fails at run time with a 422), the init here
 * is checked against the operation's exact type: TypeScript rejects any unknown field, in the
 * body, the query, the path or the headers.
 */
export type NexusMethod<M extends Method> = <P extends PathWith<M>, K extends ParseAs = "json">(
  path: P,
  ...init: InitArgs<P, M, K>
) => Promise<FetchResponse<Extract<paths[P][M], Record<string, any>>, { parseAs: K }, MediaType>>;

/** openapi-fetch's client (same object at run time), typed strictly for the Nexus API. */
export interface NexusClient {
  GET: NexusMethod<"get">;
  POST: NexusMethod<"post">;
  PUT: NexusMethod<"put">;
  PATCH: NexusMethod<"patch">;
  DELETE: NexusMethod<"delete">;
  use(...middleware: Middleware[]): void;
  eject(...middleware: Middleware[]): void;
}

export interface NexusClientOptions {
  /**
   * Origin of the API, without `/api/v1` (the paths carry it): `"https://api.example.com"`,
   * or `""` in a browser app that serves or proxies the API on its own origin.
   */
  baseUrl: string;
  /**
   * The current access token, or null/undefined when signed out. Called before every request,
   * so the client always sends the latest token (after a refresh, or nothing after sign-out).
   */
  getAccessToken: () => string | null | undefined | Promise<string | null | undefined>;
  /** A fetch to use instead of `globalThis.fetch` (tests, SSR). */
  fetch?: (input: Request) => Promise<Response>;
}

/**
 * Adds `Authorization: Bearer <access token>` to every request that has none of its own.
 * A request that sets the header itself keeps it: `POST /api/v1/auth/refresh` is sent with
 * the *refresh* token, e.g. `headers: { Authorization: \`Bearer ${refreshToken}\` }`.
 */
export function bearerAuth(getAccessToken: NexusClientOptions["getAccessToken"]): Middleware {
  return {
    async onRequest({ request }) {
      if (request.headers.has("Authorization")) return undefined;
      const token = await getAccessToken();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  };
}

/** A client for every endpoint of openapi.json: `client.GET("/api/v1/products", {...})`. */
export function createNexusClient({ baseUrl, getAccessToken, fetch }: NexusClientOptions): NexusClient {
  const client = createClient<paths>(fetch ? { baseUrl, fetch } : { baseUrl });
  client.use(bearerAuth(getAccessToken));
  // Only the static type is narrowed (see NexusMethod); the object is openapi-fetch's client.
  return client as NexusClient;
}
