// Sign in with an emailed one-time code, find a product in the catalog and order it.
// Every call below is checked against openapi.json: a wrong path, field name or type, or a
// missing required field, is a compile error (`npm run check`), not a 422 at run time.
import {
  createNexusClient,
  type NexusClient,
  type Order,
  type ProductFilters,
  type ShippingAddressCreate,
} from "../src/client";

export interface SignInAndOrderOptions {
  /** API origin, e.g. "http://127.0.0.1:5000" (`make run`) or "" behind the app's own proxy. */
  baseUrl: string;
  /** An existing account's email (`POST /api/v1/auth/register` creates one). */
  email: string;
  /** Asks the user for the 6-digit code we emailed (in development it is in the server log). */
  readCode: () => Promise<string>;
}

export async function signInAndOrder({ baseUrl, email, readCode }: SignInAndOrderOptions): Promise<Order> {
  // In the React app this lives in your auth state (context, store); the client reads it on
  // every request, so signing in or out needs no new client.
  let accessToken: string | null = null;
  const api = createNexusClient({ baseUrl, getAccessToken: () => accessToken });

  // 1. Ask for a code: 202 whether or not the account exists.
  const requested = await api.POST("/api/v1/auth/otp/request", { body: { email } });
  if (requested.error) throw new Error(`could not request a code: ${requested.error.message}`);

  // 2. Trade the code for tokens.
  const code = await readCode();
  const signedIn = await api.POST("/api/v1/auth/otp/verify", { body: { email, code } });
  if (signedIn.error) throw new Error(`sign-in failed: ${signedIn.error.message}`);
  accessToken = signedIn.data.access_token;
  console.log(`signed in as ${signedIn.data.user.email} (${signedIn.data.user.role})`);

  // 3. The catalog, filtered: in stock, at most 50.00, cheapest first.
  const filters: ProductFilters = { in_stock: true, max_price: 5000, sort: "price_asc", limit: 10 };
  const catalog = await api.GET("/api/v1/products", { params: { query: filters } });
  if (catalog.error) throw new Error(`could not list products: ${catalog.error.message}`);
  const product = catalog.data.items[0]; // Product | undefined: the page may be empty
  if (!product) throw new Error("no product matches the filters");
  console.log(`cheapest: ${product.name} at ${product.price} ${product.currency} (${product.stock} left)`);

  // 4. Order it, to an address (country: an ISO 3166-1 alpha-2 code). The Idempotency-Key
  //    makes a retry after a network error safe.
  const placed = await api.POST("/api/v1/orders", {
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
    body: {
      items: [{ product_id: product.id, quantity: 1 }],
      note: "Gift wrap, please",
      shipping_address: { name: "Ada Lovelace", line1: "Marina Walk 12", city: "Dubai", country: "AE" },
    },
  });
  if (placed.error) {
    // 409: not enough stock; 422: invalid (field errors in `errors`).
    throw new Error(`order refused (${placed.response.status}): ${placed.error.message}`);
  }
  const order = placed.data;
  console.log(`order ${order.id}: ${order.status}, ${order.total} ${order.currency}, pay before ${order.expires_at}`);
  console.log(`the store will ship to ${order.shipping_address?.city} and can reach you at ${order.buyer_email}`);
  return order;
}

/** Never called: what the compiler rejects (more cases in type-tests/misuse.ts). */
export function rejectedAtCompileTime(api: NexusClient): void {
  const address: ShippingAddressCreate = { name: "Ada", line1: "Marina Walk 12", city: "Dubai", country: "AE" };
  // @ts-expect-error -- an order line is {product_id, quantity}: `qty` is unknown, `quantity` missing.
  void api.POST("/api/v1/orders", { body: { items: [{ product_id: 1, qty: 1 }], shipping_address: address } });
  // @ts-expect-error -- a country is its ISO 3166-1 alpha-2 code ("AE"), not a name.
  void api.POST("/api/v1/orders", { body: { items: [], shipping_address: { ...address, country: "UAE" } } });
}
