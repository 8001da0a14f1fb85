// Compile-time tests of the client's types; `npm run check` compiles them, nothing runs them.
// Every `@ts-expect-error` must meet an error: if a line below ever type-checks (the client's
// types got looser, or the API changed), `tsc` fails with "Unused '@ts-expect-error' directive".
import type { NexusClient, Order, Product } from "../src/client";

const address = { name: "Ada Lovelace", line1: "Marina Walk 12", city: "Dubai", country: "AE" } as const;

export async function rejected(api: NexusClient): Promise<void> {
  // A misspelt optional body field: openapi-fetch's own signature lets this through.
  // @ts-expect-error -- `note`, not `notes`
  await api.POST("/api/v1/orders", { body: { items: [], notes: "x", shipping_address: address } });
  // An unknown field next to every required one, one level down.
  // @ts-expect-error -- order lines have no `price`
  await api.POST("/api/v1/orders", { body: { items: [{ product_id: 1, quantity: 1, price: 5 }], shipping_address: address } });
  // @ts-expect-error -- every order says where it goes
  await api.POST("/api/v1/orders", { body: { items: [{ product_id: 1, quantity: 1 }] } });
  // @ts-expect-error -- addresses have no `street`
  await api.POST("/api/v1/orders", { body: { items: [], shipping_address: { ...address, street: "x" } } });
  // @ts-expect-error -- `code` is required
  await api.POST("/api/v1/auth/otp/verify", { body: { email: "ada@example.com" } });
  // @ts-expect-error -- `max_price`, not `maxPrice`
  await api.GET("/api/v1/products", { params: { query: { in_stock: true, maxPrice: 10 } } });
  // @ts-expect-error -- prices are integers in minor units
  await api.GET("/api/v1/products", { params: { query: { max_price: "10.00" } } });
  // @ts-expect-error -- not one of newest, price_asc, price_desc
  await api.GET("/api/v1/products", { params: { query: { sort: "cheapest" } } });
  // @ts-expect-error -- the path parameter is required
  await api.GET("/api/v1/orders/{order_id}");
  // @ts-expect-error -- no such path
  await api.GET("/api/v1/order/{order_id}", { params: { path: { order_id: 1 } } });
  // @ts-expect-error -- no such header
  await api.POST("/api/v1/orders", { params: { header: { "Idempotency-Kee": "k" } }, body: { items: [], shipping_address: address } });
  // @ts-expect-error -- PATCH is not a method of this path
  await api.PATCH("/api/v1/orders", { body: {} });

  const page = await api.GET("/api/v1/products");
  if (page.data) {
    // @ts-expect-error -- `price`, not `prise`
    void page.data.items[0]?.prise;
  }
}

export async function accepted(api: NexusClient): Promise<void> {
  const placed = await api.POST("/api/v1/orders", {
    params: { header: { "Idempotency-Key": "k-1" } },
    body: { items: [{ product_id: 1, quantity: 2 }], note: null, shipping_address: { ...address, line2: null } },
  });
  if (placed.data) {
    const order: Order = placed.data;
    void order;
  } else {
    const message: string | undefined = placed.error.message;
    void message;
  }

  const products = await api.GET("/api/v1/stores/{store_id}/products", { params: { path: { store_id: 1 } } });
  if (products.data) {
    const first: Product | undefined = products.data.items[0];
    void first;
  }

  // A refresh sends the refresh token; the client's middleware keeps a header set by the call.
  const refreshed = await api.POST("/api/v1/auth/refresh", { headers: { Authorization: "Bearer <refresh token>" } });
  if (refreshed.data) {
    const access: string = refreshed.data.access_token;
    void access;
  }

  // A report file as a Blob (CSV) for a download link.
  const file = await api.GET("/api/v1/reports/{report_id}/download", {
    params: { path: { report_id: 1 } },
    parseAs: "blob",
  });
  if (file.data) {
    const blob: Blob = file.data;
    void blob;
  }

  // Any fetch option passes through, e.g. an AbortSignal from a React effect.
  await api.GET("/api/v1/orders", { params: { query: { status: "paid" } }, signal: new AbortController().signal });
}
