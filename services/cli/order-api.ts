/**
 * The order API as the CLI calls it: the REST routes (place, read, history, catalog) and the
 * Connect OrderService's WatchOrder stream, at ORDER_API_URL. Every order call carries a bearer
 * token: the customer's when placing an order, an operator's when reading one (the catalog is
 * public). Failures become errors that say what to do — the service is not running, the order does
 * not exist, the request was refused and why.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { OrderService } from "../../gen/orderflow/v1/order_service_pb.ts";
import { messageOf } from "../../lib/errors.ts";
import type { restOrder } from "../order/http.ts";
import type { OrderApi } from "./context.ts";
import type { OrderBody } from "./samples.ts";
import { bearer } from "./tokens.ts";

/** An order as GET /orders/{id} returns it. */
export type RestOrder = ReturnType<typeof restOrder>;

/** One entry of GET /orders/{id}/events. */
export interface RestOrderEvent {
  readonly event_id: string;
  readonly event_type: string;
  readonly topic: string;
  readonly occurred_at: string | null;
  readonly summary: string;
}

/** A catalog entry as GET /products returns it. */
export interface RestProduct {
  readonly sku: string;
  readonly name: string;
  readonly currency: string;
  readonly price: string;
  readonly available: number;
}

/** The order API answered with an error status. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Statuses after which an order never changes again. */
export const terminalStatuses: ReadonlySet<string> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** "could not reach" in words an operator acts on. */
function unreachable(baseUrl: string, err: unknown): Error {
  const cause = err instanceof Error && err.cause instanceof Error ? messageOf(err.cause) : messageOf(err);
  return new Error(`the order API at ${baseUrl} is unreachable (${cause}) — is the order service running? (make up, or set ORDER_API_URL)`, { cause: err });
}

async function call(baseUrl: string, path: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(`${baseUrl}${path}`, { ...init, signal: init.signal ?? AbortSignal.timeout(15_000) });
  } catch (err) {
    throw unreachable(baseUrl, err);
  }
}

/** The API's error body in one line: `invalid request (items[0].price: …)`. */
async function errorOf(response: Response, what: string): Promise<ApiError> {
  const text = await response.text();
  let detail = text.trim() || response.statusText;
  try {
    const body = JSON.parse(text) as { error?: unknown; violations?: { field?: unknown; message?: unknown }[] };
    if (typeof body.error === "string") {
      const violations = Array.isArray(body.violations) ? body.violations.map((v) => `${String(v.field)}: ${String(v.message)}`) : [];
      detail = violations.length > 0 ? `${body.error} (${violations.join("; ")})` : body.error;
    }
  } catch {
    // Not JSON (a proxy's page): the text itself is the detail.
  }
  return new ApiError(response.status, `${what}: the order API answered ${response.status}: ${detail}`);
}

async function json<T>(baseUrl: string, path: string, what: string, headers: Record<string, string> = {}): Promise<T> {
  const response = await call(baseUrl, path, { headers });
  if (!response.ok) throw await errorOf(response, what);
  return (await response.json()) as T;
}

/** The outcome of one POST /orders: accepted with its id, or refused with the status and reason. */
export type PlaceResult = { readonly accepted: true; readonly orderId: string; readonly replayed: boolean } | { readonly accepted: false; readonly status: number; readonly error: string };

/** POST /orders with an Idempotency-Key, as the order's customer; a refusal is a result, an unreachable API throws. */
export async function postOrder(api: OrderApi, body: OrderBody, idempotencyKey: string = randomUUID()): Promise<PlaceResult> {
  const token = await api.credentials.forCustomer(body.customer_id);
  const response = await call(api.baseUrl, "/orders", {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": idempotencyKey, ...bearer(token) },
    body: JSON.stringify(body),
  });
  if (response.status === 202 || response.status === 200) {
    const { order_id: orderId } = (await response.json()) as { order_id: string };
    return { accepted: true, orderId, replayed: response.headers.get("idempotent-replayed") === "true" };
  }
  const error = await errorOf(response, "place order");
  return { accepted: false, status: response.status, error: error.message };
}

/** The order's current view; a 404 says the order is unknown. */
export async function getOrder(api: OrderApi, orderId: string): Promise<RestOrder> {
  return json<RestOrder>(api.baseUrl, `/orders/${encodeURIComponent(orderId)}`, `order ${orderId}`, bearer(await api.credentials.operator()));
}

/** The order's history, oldest first. */
export async function orderEvents(api: OrderApi, orderId: string): Promise<RestOrderEvent[]> {
  const token = await api.credentials.operator();
  return (await json<{ events: RestOrderEvent[] }>(api.baseUrl, `/orders/${encodeURIComponent(orderId)}/events`, `events of order ${orderId}`, bearer(token))).events;
}

/** The catalog with live availability. */
export async function listProducts(baseUrl: string): Promise<RestProduct[]> {
  return (await json<{ products: RestProduct[] }>(baseUrl, "/products", "catalog")).products;
}

/** The Connect OrderService client over HTTP/1.1 (the order API serves both on one port), calling as an operator. */
export function orderServiceClient(api: OrderApi): Client<typeof OrderService> {
  const asOperator: Interceptor = (next) => async (req) => {
    req.header.set("authorization", bearer(await api.credentials.operator()).authorization);
    return next(req);
  };
  return createClient(OrderService, createConnectTransport({ baseUrl: api.baseUrl, httpVersion: "1.1", interceptors: [asOperator] }));
}

/** A ConnectError from the order API in an operator's words. */
export function orderServiceError(baseUrl: string, err: unknown): Error {
  const connect = ConnectError.from(err);
  if (connect.code === Code.Unavailable) return unreachable(baseUrl, connect);
  return new Error(`order API: ${connect.rawMessage}`, { cause: err });
}
