/**
 * The order API's transports on one port: REST/JSON routes (proto field names, money as decimal
 * strings, short enum names) and the Connect service `orderflow.v1.OrderService` (Connect, gRPC and
 * gRPC-Web). Both call the same core; errors are ConnectErrors mapped to HTTP statuses here. No
 * request can crash the process: bodies are bounded, parsing and validation failures are 400s.
 * Every order route needs a bearer token (auth.ts) checked before any body is read, and acts for
 * its caller (access.ts); the catalog is public. REST bodies are JSON only (415 otherwise), which
 * also turns away the form posts a browser sends cross-site. RPC bodies are bounded on the wire
 * and after decompression (RPC_READ_MAX_BYTES), and every RPC's request is validated against its
 * proto rules (validation.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey, createContextValues, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderService, PlaceOrderRequestSchema, type Order, type Product } from "../../gen/orderflow/v1/order_service_pb.ts";
import type { RpcLimits } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { headerRefusal, procedureOf, rpcAdapter, writeRpcError } from "../../lib/rpc-guard.ts";
import { traceRequest } from "../../lib/tracing.ts";
import { scopedOrders, type ScopedOrders } from "./access.ts";
import type { Authenticator, Caller } from "./auth.ts";
import { parseAmount } from "./money.ts";
import { violationsOf, type FieldViolation, type Orders } from "./orders.ts";
import type { PlaceLimiter } from "./rate-limit.ts";
import { validateRequests } from "./validation.ts";
import { createWatchSlots } from "./watch-slots.ts";

/** Largest REST request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const httpStatus: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.Aborted]: 409,
  [Code.FailedPrecondition]: 409,
  [Code.Unavailable]: 503,
  [Code.ResourceExhausted]: 429,
};

/** Response headers a ConnectError carries for the client (the bearer challenge, Retry-After). */
const forwardedErrorHeaders = ["www-authenticate", "retry-after"];

/** The REST shape of an order. */
export function restOrder(order: Order) {
  return {
    order_id: order.orderId,
    customer_id: order.customerId,
    status: OrderStatus[order.status],
    ...(order.status === OrderStatus.FAILED ? { failure_reason: FailureReason[order.failureReason], failure_detail: order.failureDetail } : {}),
    currency: order.currency,
    total: order.total,
    items: order.items.map((i) => ({ product_id: i.productId, quantity: i.quantity, price: i.price })),
    card_last4: order.cardLast4,
    refunded: order.refunded,
    created_at: order.createdAt === undefined ? null : timestampDate(order.createdAt).toISOString(),
    updated_at: order.updatedAt === undefined ? null : timestampDate(order.updatedAt).toISOString(),
    version: Number(order.version),
  };
}

function restProduct(p: Product) {
  return { sku: p.sku, name: p.name, currency: p.currency, price: p.price, available: Number(p.available) };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly violations: readonly FieldViolation[] = [],
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Refuses a body that is not declared JSON (`application/json`, parameters such as charset
 * allowed) with 415. A request without Content-Type may only come without a body (a cancel
 * without a reason).
 */
function assertJsonBody(req: IncomingMessage, required: boolean): void {
  const declared = req.headers["content-type"];
  const hasBody = Number(req.headers["content-length"] ?? "0") > 0 || req.headers["transfer-encoding"] !== undefined;
  if (declared === undefined && !required && !hasBody) return;
  const mediaType = (declared ?? "").split(";")[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") {
    throw new HttpError(415, `the body must be JSON sent with Content-Type: application/json (got ${declared === undefined ? "no Content-Type" : JSON.stringify(declared.slice(0, 100))})`);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
}

/**
 * Turns a REST body into a PlaceOrderRequest: prices may be JSON numbers (the seeds' form),
 * `total_amount` is checked against the lines, currency defaults to USD.
 */
export function placeOrderRequestOf(body: unknown, idempotencyKey: string | undefined) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError(400, "body must be a JSON object");
  const input = { ...(body as Record<string, unknown>) };
  const violations: FieldViolation[] = [];
  const declaredTotal = input["total_amount"];
  delete input["total_amount"];
  input["currency"] ??= "USD";
  if (Array.isArray(input["items"])) {
    input["items"] = input["items"].map((item: unknown) => {
      if (typeof item !== "object" || item === null) return item;
      const line = { ...(item as Record<string, unknown>) };
      if (typeof line["price"] === "number") line["price"] = String(line["price"]);
      return line;
    });
  }
  let request;
  try {
    request = fromJson(PlaceOrderRequestSchema, input as JsonValue);
  } catch (err) {
    const unknown = /key "([^"]+)" is unknown/.exec(messageOf(err))?.[1];
    throw new HttpError(400, "invalid request", [{ field: unknown ?? "(body)", message: unknown ? "unknown field" : messageOf(err) }]);
  }
  if (idempotencyKey !== undefined) request.idempotencyKey = idempotencyKey;
  if (declaredTotal !== undefined) {
    try {
      const declared = parseAmount(declaredTotal, request.currency);
      const sum = request.items.reduce((acc, i) => acc + parseAmount(i.price, request.currency) * BigInt(i.quantity), 0n);
      if (declared !== sum) violations.push({ field: "total_amount", message: `does not equal the sum of the lines` });
    } catch (err) {
      violations.push({ field: "total_amount", message: messageOf(err) });
    }
  }
  if (violations.length > 0) throw new HttpError(400, "invalid request", violations);
  return request;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, err: unknown, log: Logger): void {
  if (err instanceof HttpError) {
    send(res, err.status, { error: err.message, ...(err.violations.length > 0 ? { violations: err.violations } : {}) });
    return;
  }
  const violations = violationsOf(err);
  if (violations !== undefined) {
    send(res, 400, { error: "invalid request", violations });
    return;
  }
  const connect = ConnectError.from(err);
  const status = httpStatus[connect.code] ?? 500;
  if (status === 500) {
    log.error({ err: messageOf(err) }, "request failed");
    send(res, 500, { error: "internal error" });
    return;
  }
  const headers: Record<string, string> = status === 503 ? { "retry-after": "1" } : {};
  for (const name of forwardedErrorHeaders) {
    const value = connect.metadata.get(name);
    if (value !== null) headers[name] = value;
  }
  send(res, status, { error: connect.rawMessage }, headers);
}

function uuidParam(value: string, field: string): string {
  if (!UUID.test(value)) throw new HttpError(400, "invalid request", [{ field, message: "must be a UUID" }]);
  return value;
}

/** The transports' view of the service: the core, the caller-scoped operations, who is calling. */
interface ApiDeps {
  readonly orders: Orders;
  readonly scoped: ScopedOrders;
  readonly authenticator: Authenticator;
}

/** The REST routes. Returns false when no route matched. */
async function rest({ orders, scoped, authenticator }: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const parts = url.pathname.split("/").filter(Boolean);
  const method = req.method ?? "GET";
  if (parts[0] === "orders") {
    const caller = await authenticator.authenticate(req.headers.authorization);
    if (parts.length === 1 && method === "POST") {
      assertJsonBody(req, true);
      const key = req.headers["idempotency-key"];
      const request = placeOrderRequestOf(await readJson(req), Array.isArray(key) ? key[0] : key);
      const placed = await scoped.placeOrder(caller, request);
      send(res, 202, { order_id: placed.orderId, status: "PENDING" }, placed.replayed ? { "idempotent-replayed": "true" } : {});
      return true;
    }
    if (parts.length === 1 && method === "GET") {
      const statusName = url.searchParams.get("status")?.toUpperCase();
      const status = statusName ? OrderStatus[statusName as keyof typeof OrderStatus] : OrderStatus.UNSPECIFIED;
      if (status === undefined) throw new HttpError(400, "invalid request", [{ field: "status", message: "unknown status" }]);
      const pageSize = Number(url.searchParams.get("page_size") ?? "50");
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 200) throw new HttpError(400, "invalid request", [{ field: "page_size", message: "must be 1 to 200" }]);
      const page = await scoped.listOrders(caller, { customerId: url.searchParams.get("customer_id") ?? "", status, pageSize, pageToken: url.searchParams.get("page_token") ?? "" });
      send(res, 200, { orders: page.orders.map(restOrder), next_page_token: page.nextPageToken });
      return true;
    }
    const orderId = parts[1] === undefined ? "" : uuidParam(parts[1], "order_id");
    if (parts.length === 2 && method === "GET") {
      send(res, 200, restOrder(await scoped.getOrder(caller, orderId)));
      return true;
    }
    if (parts.length === 3 && parts[2] === "events" && method === "GET") {
      const events = await scoped.listOrderEvents(caller, orderId);
      send(res, 200, {
        events: events.map((e) => ({ event_id: e.eventId, event_type: e.eventType, topic: e.topic, occurred_at: e.occurredAt ? timestampDate(e.occurredAt).toISOString() : null, summary: e.summary })),
      });
      return true;
    }
    if (parts.length === 3 && parts[2] === "cancel" && method === "POST") {
      assertJsonBody(req, false);
      const body = (await readJson(req)) as { reason?: unknown };
      const reason = typeof body.reason === "string" ? body.reason.slice(0, 500) : "";
      const order = await scoped.cancelOrder(caller, orderId, reason);
      send(res, 202, { order_id: order.orderId, status: OrderStatus[order.status], cancellation: "requested" });
      return true;
    }
  }
  if (parts[0] === "products" && method === "GET") {
    if (parts.length === 1) {
      send(res, 200, { products: (await orders.listProducts()).map(restProduct) });
      return true;
    }
    if (parts.length === 2 && parts[1] !== undefined) {
      send(res, 200, restProduct(await orders.getProduct(parts[1])));
      return true;
    }
  }
  return false;
}

/** The caller admitRpc found, for the handlers. */
const callerKey = createContextKey<Caller | undefined>(undefined);

/** OrderService methods anyone may call: the catalog. */
const publicMethods: ReadonlySet<string> = new Set([OrderService.method.listProducts.name, OrderService.method.getProduct.name]);

/**
 * Checks a Connect, gRPC or gRPC-Web request before connect's adapter reads a byte of its body: a
 * body declared larger than the limit, a compression the server does not have and a deadline too
 * short to meet are refused, and every OrderService method but the catalog's needs a valid token.
 * Resolves with the caller, if there is one, for the handlers.
 */
async function admitRpc(authenticator: Authenticator, readMaxBytes: number, req: IncomingMessage): Promise<Caller | undefined> {
  const refusal = headerRefusal(req, readMaxBytes);
  if (refusal !== undefined) throw refusal;
  const procedure = procedureOf(req);
  if (procedure?.service !== OrderService.typeName || publicMethods.has(procedure.method)) return undefined;
  return authenticator.authenticate(req.headers.authorization);
}

function callerOf(context: HandlerContext): Caller {
  const caller = context.values.get(callerKey);
  if (caller === undefined) throw new ConnectError("no authenticated caller", Code.Unauthenticated);
  return caller;
}

/** The Connect implementation of OrderService over the same core. */
export function orderRoutes({ orders, scoped }: Pick<ApiDeps, "orders" | "scoped">) {
  return (router: ConnectRouter) =>
    router.service(OrderService, {
      async placeOrder(request, context) {
        const placed = await scoped.placeOrder(callerOf(context), request);
        return { orderId: placed.orderId, status: placed.status };
      },
      async getOrder(request, context) {
        return { order: await scoped.getOrder(callerOf(context), request.orderId) };
      },
      async listOrders(request, context) {
        return scoped.listOrders(callerOf(context), request);
      },
      async cancelOrder(request, context) {
        const order = await scoped.cancelOrder(callerOf(context), request.orderId, request.reason);
        return { orderId: order.orderId, status: order.status };
      },
      async listOrderEvents(request, context) {
        return { events: await scoped.listOrderEvents(callerOf(context), request.orderId) };
      },
      async *watchOrder(request, context) {
        for await (const order of scoped.watchOrder(callerOf(context), request.orderId, context.signal)) yield { order };
      },
      async listProducts() {
        return { products: await orders.listProducts() };
      },
      async getProduct(request) {
        return { product: await orders.getProduct(request.sku) };
      },
    });
}

export interface ApiServer {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/** The route template of a path, for span names: ids become placeholders, the query goes. */
export function routeOf(url: string): string {
  const path = url.split("?")[0] ?? "/";
  return path
    .replace(/^\/orders\/[^/]+/, "/orders/{order_id}")
    .replace(/^\/products\/[^/]+/, "/products/{sku}");
}

/** Who may call, and how much: the token verifier, the per-client limit on placing orders, the RPC bounds. */
export interface ApiGuard {
  readonly authenticator: Authenticator;
  readonly limiter: PlaceLimiter;
  readonly limits: RpcLimits;
}

/** Serves REST and Connect on host:port (0 = any free port); each request is a SERVER span. */
export async function startApiServer(orders: Orders, guard: ApiGuard, log: Logger, port: number, host = "127.0.0.1"): Promise<ApiServer> {
  const deps: ApiDeps = { orders, scoped: scopedOrders(orders, guard.limiter, createWatchSlots(guard.limits.watch)), authenticator: guard.authenticator };
  const { readMaxBytes } = guard.limits;
  /** Callers admitted at the HTTP level, handed to connect's handlers as context values. */
  const callers = new WeakMap<object, Caller>();
  const connect = rpcAdapter(
    {
      routes: orderRoutes(deps),
      readMaxBytes,
      interceptors: [validateRequests],
      contextValues: (req) => createContextValues().set(callerKey, callers.get(req)),
    },
    log,
  );
  const rpc = async (req: IncomingMessage, res: ServerResponse) => {
    let caller: Caller | undefined;
    try {
      caller = await admitRpc(guard.authenticator, readMaxBytes, req);
    } catch (err) {
      writeRpcError(req, res, ConnectError.from(err));
      return;
    }
    if (caller !== undefined) callers.set(req, caller);
    connect(req, res);
  };
  const server = createServer((req, res) => {
    const method = req.method ?? "GET";
    const route = routeOf(req.url ?? "/");
    const attributes = { "http.request.method": method, "http.route": route, "url.path": (req.url ?? "/").split("?")[0] ?? "/" };
    void traceRequest(`${method} ${route}`, "server", req.headers, attributes, async (span) => {
      const finished = new Promise<void>((resolve) => res.once("close", resolve));
      await rest(deps, req, res)
        .then(async (handled) => {
          if (!handled) await rpc(req, res);
        })
        .catch((err: unknown) => sendError(res, err, log));
      await finished;
      span.setAttribute("http.response.status_code", res.statusCode);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
