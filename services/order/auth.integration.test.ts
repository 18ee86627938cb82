/**
 * The order API knows who is calling, over real HTTP, Kafka and Redis: 401 with a bearer challenge
 * without a valid token (REST and Connect), customers confined to their own orders (another's
 * answers 404 exactly like a missing one, for reading, history, watching, cancelling and listing),
 * an operator seeing all, 403 for ordering in another's name, 415 for a body that is not JSON,
 * 429 with Retry-After past the per-client limit shared by two instances, a public catalog, and the
 * token `orderflow token` prints accepted.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderService } from "../../gen/orderflow/v1/order_service_pb.ts";
import { createLogger } from "../../lib/log.ts";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { testAuth } from "../../test/harness/auth.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { freePort } from "../../test/harness/processes.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { runCli } from "../cli/main.ts";
import { bearer, ensureSigningKeyPair, signToken } from "../cli/tokens.ts";
import { createPlaceLimiter } from "./rate-limit.ts";
import { buildOrder } from "./service.ts";

const LIMIT = 3;
let t: TestKafka;
let r: TestRedis;
const services: RunningService[] = [];
const bases: string[] = [];

async function startOrder(): Promise<string> {
  const port = await freePort();
  const env = serviceEnv(t, r.prefix, { HTTP_PORT: String(port), ORDER_RATE_LIMIT_ORDERS: String(LIMIT), ORDER_RATE_LIMIT_WINDOW_S: "60" });
  services.push(await startService("order", buildOrder(env), env));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  t = await openTestKafka("order-auth-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await r.redis.sadd(r.keys("products"), "mouse");
  await r.redis.hset(r.keys("product", "mouse"), { name: "Mouse", currency: "USD", price_minor: "2500" });
  bases.push(await startOrder(), await startOrder());
});

afterAll(async () => {
  for (const service of services) await service.stop();
  await r?.close();
  await t?.close();
});

const base = () => bases[0] ?? "";
const tokenFor = (customer: string) => testAuth().credentials.forCustomer(customer);
const as = async (customer: string) => bearer(await tokenFor(customer));
const asOperator = async () => bearer(await testAuth().credentials.operator());

const orderOf = (customer: string) => ({
  customer_id: customer,
  customer_email: "shopper@example.com",
  currency: "USD",
  items: [{ product_id: "mouse", quantity: 1, price: "25.00" }],
  payment: { method: "card", card_number: "4242424242424242" },
});

/** The same order as a Connect PlaceOrderRequest (valid: requests are validated before the caller's rights are looked at). */
const connectOrderOf = (customer: string) => ({
  customerId: customer,
  customerEmail: "shopper@example.com",
  currency: "USD",
  items: [{ productId: "mouse", quantity: 1, price: "25.00" }],
  payment: { method: "card", cardNumber: "4242424242424242" },
});

const post = (auth: Record<string, string>, body: unknown, contentType = "application/json", url = base()) =>
  fetch(`${url}/orders`, { method: "POST", headers: { "content-type": contentType, ...auth }, body: typeof body === "string" ? body : JSON.stringify(body) });

async function placed(customer: string): Promise<string> {
  const res = await post(await as(customer), orderOf(customer));
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { order_id: string }).order_id;
}

function connectAs(auth: Record<string, string>) {
  const header: Interceptor = (next) => (req) => {
    for (const [name, value] of Object.entries(auth)) req.header.set(name, value);
    return next(req);
  };
  return createClient(OrderService, createConnectTransport({ baseUrl: base(), httpVersion: "1.1", interceptors: [header] }));
}

const codeOf = (promise: Promise<unknown>) => promise.then(() => "ok", (err: unknown) => ConnectError.from(err).code);

describe("authentication", () => {
  it("answers 401 with a bearer challenge and a reason without a token, with a bad one and an expired one", async () => {
    const missing = await fetch(`${base()}/orders`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="orderflow-orders"');
    expect(((await missing.json()) as { error: string }).error).toContain("bearer token is required");

    const strangerKey = readFileSync(ensureSigningKeyPair(mkdtempSync(join(tmpdir(), "orderflow-stranger-"))).privateKeyFile, "utf8");
    for (const [token, reason] of [
      [await signToken(strangerKey, { subject: "c-a" }), "signature does not verify"],
      [await signToken(readFileSync(testAuth().privateKeyFile, "utf8"), { subject: "c-a", ttlSeconds: -300 }), "expired"],
      ["garbage", "malformed"],
    ] as const) {
      const res = await post(bearer(token), orderOf("c-a"));
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
      expect(((await res.json()) as { error: string }).error).toContain(reason);
    }
  });

  it("answers Connect calls without a token Unauthenticated, and keeps the catalog public", async () => {
    const anonymous = connectAs({});
    expect(await codeOf(anonymous.listOrders({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(anonymous.placeOrder({ customerId: "c-a" }))).toBe(Code.Unauthenticated);
    expect((await anonymous.listProducts({})).products.map((p) => p.sku)).toEqual(["mouse"]);
    expect((await fetch(`${base()}/products/mouse`)).status).toBe(200);
  });

  it("accepts the token `orderflow token --customer` prints", async () => {
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => printed.push(String(chunk)) > 0);
    try {
      expect(await runCli(["node", "orderflow", "token", "--customer", "c-cli"], { LOG_LEVEL: "silent", ORDER_API_SIGNING_KEY_FILE: testAuth().privateKeyFile })).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const res = await post(bearer(printed.join("").trim()), orderOf("c-cli"));
    expect(res.status, await res.clone().text()).toBe(202);
  });
});

describe("authorisation", () => {
  it("hides customer A's order from customer B: 404 for reading, history, watching and cancelling, as for a missing order", async () => {
    const watch = await watchTopics(t, ["orders.cancel.requested"]);
    const mine = await placed("c-a");
    const asB = await as("c-b");
    const missing = await fetch(`${base()}/orders/${randomUUID()}`, { headers: asB });
    expect(missing.status).toBe(404);
    for (const path of [`/orders/${mine}`, `/orders/${mine}/events`]) {
      const res = await fetch(`${base()}${path}`, { headers: asB });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: string }).error).toBe(`order ${mine} not found`);
    }
    const cancel = await fetch(`${base()}/orders/${mine}/cancel`, { method: "POST", headers: asB });
    expect(cancel.status).toBe(404);
    const b = connectAs(asB);
    expect(await codeOf(b.getOrder({ orderId: mine }))).toBe(Code.NotFound);
    expect(await codeOf(b.listOrderEvents({ orderId: mine }))).toBe(Code.NotFound);
    expect(await codeOf(b.cancelOrder({ orderId: mine }))).toBe(Code.NotFound);
    expect(await codeOf((async () => {
      for await (const update of b.watchOrder({ orderId: mine })) return update;
    })())).toBe(Code.NotFound);

    // A may: its own order, over both transports; its cancel is the only one recorded.
    expect((await fetch(`${base()}/orders/${mine}`, { headers: await as("c-a") })).status).toBe(200);
    const a = connectAs(await as("c-a"));
    for await (const update of a.watchOrder({ orderId: mine })) {
      expect(update.order?.status).toBe(OrderStatus.PENDING);
      break;
    }
    const ownCancel = await fetch(`${base()}/orders/${mine}/cancel`, { method: "POST", headers: { "content-type": "application/json", ...(await as("c-a")) }, body: '{"reason":"mine"}' });
    expect(ownCancel.status).toBe(202);
    const recorded = await watch.next(mine, "orders.cancel.requested");
    expect(watch.of(mine, "orders.cancel.requested")).toEqual([recorded]);
    expect(recorded.message).toMatchObject({ reason: "mine", requestedBy: "customer" });
    await watch.close();
  });

  it("lists a customer's own orders only (403 for asking after another's) and every order to an operator", async () => {
    const ofC = await placed("c-c");
    const ofD = await placed("c-d");
    const list = async (auth: Record<string, string>, query = "") => {
      const res = await fetch(`${base()}/orders?page_size=200${query}`, { headers: auth });
      return { status: res.status, ids: res.status === 200 ? ((await res.json()) as { orders: { order_id: string }[] }).orders.map((o) => o.order_id) : [] };
    };
    const own = await list(await as("c-c"));
    expect(own.ids).toContain(ofC);
    expect(own.ids).not.toContain(ofD);
    expect((await list(await as("c-c"), "&customer_id=c-c")).ids).toEqual(own.ids);
    expect((await list(await as("c-c"), "&customer_id=c-d")).status).toBe(403);
    expect(await codeOf(connectAs(await as("c-c")).listOrders({ customerId: "c-d" }))).toBe(Code.PermissionDenied);
    const all = await list(await asOperator());
    expect(all.ids).toEqual(expect.arrayContaining([ofC, ofD]));
    expect((await list(await asOperator(), "&customer_id=c-d")).ids).toEqual([ofD]);
    expect((await fetch(`${base()}/orders/${ofD}`, { headers: await asOperator() })).status).toBe(200);
  });

  it("refuses an order in another customer's name with 403 and the reason; an operator may place it", async () => {
    const res = await post(await as("c-e"), orderOf("c-f"));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toContain("customer_id must be the token's subject (c-e)");
    expect(await codeOf(connectAs(await as("c-e")).placeOrder(connectOrderOf("c-f")))).toBe(Code.PermissionDenied);
    expect((await post(await asOperator(), orderOf("c-f"))).status).toBe(202);
  });
});

describe("request bodies", () => {
  it("answers 415 unless the body is declared application/json (a charset is fine)", async () => {
    const auth = await as("c-g");
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp"]) {
      const res = await post(auth, orderOf("c-g"), type);
      expect(res.status, type).toBe(415);
      expect(((await res.json()) as { error: string }).error).toContain("Content-Type: application/json");
    }
    expect((await post(auth, orderOf("c-g"), "Application/JSON; charset=utf-8")).status).toBe(202);
    const order = await placed("c-g");
    const formCancel = await fetch(`${base()}/orders/${order}/cancel`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...auth }, body: "reason=x" });
    expect(formCancel.status).toBe(415);
  });
});

describe("rate limiting", () => {
  it("answers 429 with Retry-After past the per-client limit, counted across instances; other clients go on", async () => {
    const customer = `c-busy-${randomUUID().slice(0, 6)}`;
    const auth = await as(customer);
    expect((await post(auth, orderOf(customer), "application/json", bases[0])).status).toBe(202);
    expect((await post(auth, orderOf(customer), "application/json", bases[1])).status).toBe(202);
    expect((await post(auth, orderOf(customer), "application/json", bases[1])).status).toBe(202);
    const limited = await post(auth, orderOf(customer), "application/json", bases[1]);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(((await limited.json()) as { error: string }).error).toContain(`at most ${LIMIT} per 60 s`);
    const viaConnect = await connectAs(auth).placeOrder(connectOrderOf(customer)).catch((err: unknown) => ConnectError.from(err));
    expect(viaConnect).toMatchObject({ code: Code.ResourceExhausted });
    expect((viaConnect as ConnectError).metadata.get("retry-after")).toMatch(/^\d+$/);
    expect((await post(await as("c-calm"), orderOf("c-calm"))).status).toBe(202);
  });

  it("lets orders through, with a warning each, while Redis cannot count", async () => {
    const unreachable = createRedis({ redisUrl: "redis://127.0.0.1:1" }, createLogger("test", "silent"));
    const log = createLogger("test", "silent");
    const warn = vi.spyOn(log, "warn");
    try {
      const limiter = createPlaceLimiter(unreachable, keyspace("unused"), { orders: 1, windowMs: 60_000 }, log);
      await limiter.take("c-x");
      await limiter.take("c-x");
      expect(warn).toHaveBeenCalledTimes(2);
      expect(warn.mock.calls[0]?.[1]).toContain("let through");
    } finally {
      unreachable.disconnect();
    }
  });
});
