/**
 * The order API's bounds, over real HTTP with Kafka and Redis behind it: compression bombs on a
 * Connect endpoint refused (ResourceExhausted) without inflating them, a body declared too large
 * refused (413) and an unauthenticated call refused (401) before the body is read, every RPC's
 * request validated (a huge page size, malformed ids: InvalidArgument naming the field), a
 * ListOrders page that looks at a bounded number of orders, WatchOrder streams capped per
 * caller and per process and ended after their lifetime, and a request that connect cannot read
 * (an unknown compression, a deadline too short, a body that does not inflate or parse, a stream
 * without its message) answered as the client's mistake (4xx) with the reason, never 5xx.
 */
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderService } from "../../gen/orderflow/v1/order_service_pb.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { testAuth } from "../../test/harness/auth.ts";
import { answerBeforeBody, brotliBomb, connectUnary, gzipBomb, withPeakRssGrowth } from "../../test/harness/hostile-bodies.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { freePort } from "../../test/harness/processes.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { createCatalogTopics, serviceEnv } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { bearer } from "../cli/tokens.ts";
import { MAX_SCANNED_PER_PAGE } from "./orders.ts";
import { buildOrder } from "./service.ts";

/** Growth of this process's RSS that would mean a bomb was inflated (the largest one is 60 MiB on its own). */
const INFLATED_MIB = 32;

let t: TestKafka;
let r: TestRedis;
const services: RunningService[] = [];
/** Default limits; at most 2 streams per caller and 3 in all; streams that end after 1 s. */
let base: string, capped: string, shortLived: string;

async function startOrder(extra: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const env = serviceEnv(t, r.prefix, { HTTP_PORT: String(port), ...extra });
  services.push(await startService("order", buildOrder(env), env));
  return `http://127.0.0.1:${port}`;
}

const as = async (customer: string) => bearer(await testAuth().credentials.forCustomer(customer));

function clientAs(url: string, auth: Record<string, string>) {
  const header: Interceptor = (next) => (req) => {
    for (const [name, value] of Object.entries(auth)) req.header.set(name, value);
    return next(req);
  };
  return createClient(OrderService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [header] }));
}

/** Places an order of `customer`'s (it stays PENDING: nothing else runs) and returns its id. */
async function placed(customer: string): Promise<string> {
  const res = await fetch(`${base}/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(await as(customer)) },
    body: JSON.stringify({
      customer_id: customer,
      customer_email: "shopper@example.com",
      currency: "USD",
      items: [{ product_id: "mouse", quantity: 1, price: "25.00" }],
      payment: { method: "card", card_number: "4242424242424242" },
    }),
  });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { order_id: string }).order_id;
}

const codeOf = (promise: Promise<unknown>) => promise.then(() => "ok", (err: unknown) => ConnectError.from(err).code);

beforeAll(async () => {
  t = await openTestKafka("order-limits-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await r.redis.sadd(r.keys("products"), "mouse");
  await r.redis.hset(r.keys("product", "mouse"), { name: "Mouse", currency: "USD", price_minor: "2500" });
  base = await startOrder();
  capped = await startOrder({ WATCH_MAX_STREAMS: "3", WATCH_MAX_STREAMS_PER_CALLER: "2" });
  shortLived = await startOrder({ WATCH_MAX_LIFETIME_MS: "1000" });
});

afterAll(async () => {
  for (const service of services) await service.stop();
  await r?.close();
  await t?.close();
});

describe("bounded reads", () => {
  it("refuses a gzip bomb under the wire limit with ResourceExhausted, without inflating it", async () => {
    const bomb = gzipBomb(60);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const { result, growthMiB } = await withPeakRssGrowth(async () => connectUnary(`${base}/orderflow.v1.OrderService/GetOrder`, bomb, "gzip", await as("c-1")));
    expect(growthMiB, `RSS grew by ${growthMiB.toFixed(1)} MiB`).toBeLessThan(INFLATED_MIB);
    expect(result.code).toBe("resource_exhausted");
    expect(result.message).toMatch(/after decompression/);
  });

  it("refuses a brotli bomb of 1 GiB with ResourceExhausted, without inflating it, and keeps serving", async () => {
    const bomb = await brotliBomb(1024);
    expect(bomb.length).toBeLessThan(4 * 1024);
    const { result, growthMiB } = await withPeakRssGrowth(async () => connectUnary(`${base}/orderflow.v1.OrderService/ListOrders`, bomb, "br", await as("c-1")));
    expect(growthMiB, `RSS grew by ${growthMiB.toFixed(1)} MiB`).toBeLessThan(INFLATED_MIB);
    expect(result.code).toBe("resource_exhausted");
    expect((await clientAs(base, {}).listProducts({})).products.map((p) => p.sku)).toEqual(["mouse"]);
  });

  it("refuses a body declared larger than the limit with 413 before reading it", async () => {
    const headers = { "content-type": "application/proto", "connect-protocol-version": "1", "content-length": String(50 * 1024 * 1024), ...(await as("c-1")) };
    const answer = await answerBeforeBody(`${base}/orderflow.v1.OrderService/PlaceOrder`, headers, Buffer.alloc(1024));
    expect(answer).toEqual({ status: 413, code: "resource_exhausted" });
  });

  it("refuses a Connect call without a valid token before reading (or inflating) its body", async () => {
    const headers = { "content-type": "application/proto", "connect-protocol-version": "1", "content-encoding": "gzip", "transfer-encoding": "chunked" };
    const bomb = gzipBomb(60);
    for (const auth of [{}, { authorization: "Bearer not-a-token" }] as Record<string, string>[]) {
      const answer = await answerBeforeBody(`${base}/orderflow.v1.OrderService/ListOrders`, { ...headers, ...auth }, bomb.subarray(0, 1024));
      expect(answer).toEqual({ status: 401, code: "unauthenticated" });
    }
  });
});

describe("validation on every RPC", () => {
  it("refuses a page size of a million with InvalidArgument naming page_size (Connect) and 400 (REST)", async () => {
    const err = await clientAs(base, await as("c-1"))
      .listOrders({ pageSize: 1_000_000 })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(/^page_size: /);
    const rest = await fetch(`${base}/orders?page_size=1000000`, { headers: await as("c-1") });
    expect(rest.status).toBe(400);
    expect(((await rest.json()) as { violations: { field: string }[] }).violations.map((v) => v.field)).toEqual(["page_size"]);
  });

  it("refuses malformed order ids with InvalidArgument naming order_id on every call that takes one", async () => {
    const client = clientAs(base, await as("c-1"));
    const calls = {
      getOrder: client.getOrder({ orderId: "not-a-uuid" }),
      cancelOrder: client.cancelOrder({ orderId: "../../etc/passwd", reason: "x" }),
      listOrderEvents: client.listOrderEvents({ orderId: "1" }),
      watchOrder: (async () => {
        for await (const update of client.watchOrder({ orderId: "nope" })) return update;
        return undefined;
      })(),
    };
    for (const [name, call] of Object.entries(calls)) {
      const err = await call.then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(err?.code, name).toBe(Code.InvalidArgument);
      expect(err?.rawMessage, name).toMatch(/^order_id: /);
    }
    const tooLong = await codeOf(client.cancelOrder({ orderId: "7b0c3f9e-3c1a-4d55-9a57-4a4c05f0c3b1", reason: "x".repeat(501) }));
    expect(tooLong).toBe(Code.InvalidArgument);
  });
});

describe("requests connect cannot read: the client's mistake, with the reason", () => {
  const rpc = (method: string) => `${base}/orderflow.v1.OrderService/${method}`;
  const unary = { "content-type": "application/proto", "connect-protocol-version": "1" };
  const stream = { "content-type": "application/connect+json", "connect-protocol-version": "1" };
  const watchOf = (orderId: string) => Buffer.from(JSON.stringify({ order_id: orderId }));
  /** A Connect stream envelope: flags, the declared length, the payload. */
  const envelope = (flags: number, payload: Buffer, declared = payload.length) => {
    const head = Buffer.alloc(5);
    head.writeUInt8(flags, 0);
    head.writeUInt32BE(declared, 1);
    return Buffer.concat([head, payload]);
  };

  /** The HTTP status and error code of an answer; for a stream answered 200, the code its end-stream message carries. */
  async function answer(url: string, init: RequestInit): Promise<{ status: number; code: string; message: string }> {
    const res = await fetch(url, init);
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status === 200 && !String(res.headers.get("content-type")).startsWith("application/connect+")) return { status: 200, code: "ok", message: "" };
    if (res.status !== 200) {
      const error = JSON.parse(body.toString("utf8") || "{}") as { code?: string; message?: string };
      return { status: res.status, code: error.code ?? "", message: error.message ?? "" };
    }
    let end: { error?: { code?: string; message?: string } } = {};
    for (let at = 0; at + 5 <= body.length; at += 5 + body.readUInt32BE(at + 1)) {
      if ((body.readUInt8(at) & 0b10) !== 0) end = JSON.parse(body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1)).toString("utf8")) as typeof end;
    }
    return { status: 200, code: end.error?.code ?? "ok", message: end.error?.message ?? "" };
  }

  it("refuses a compression the server does not have with 415, naming the supported ones, whichever way the request names it", async () => {
    const auth = await as("m-1");
    const cases: [string, RequestInit][] = [
      ["GET, empty compression", { method: "GET" }],
      ["unary, Content-Encoding snappy", { method: "POST", headers: { ...unary, ...auth, "content-encoding": "snappy" }, body: Buffer.alloc(0) }],
      ["stream, Connect-Content-Encoding snappy", { method: "POST", headers: { ...stream, ...auth, "connect-content-encoding": "snappy" }, body: envelope(0, watchOf(randomUUID())) }],
    ];
    const urls = [`${rpc("ListProducts")}?connect=v1&encoding=json&compression=&message=%7B%7D`, rpc("ListOrders"), rpc("WatchOrder")];
    for (const [i, [what, init]] of cases.entries()) {
      const res = await fetch(urls[i] ?? "", init);
      const error = (await res.json()) as { code: string; message: string };
      expect({ what, status: res.status, code: error.code }).toEqual({ what, status: 415, code: "unimplemented" });
      expect(error.message, what).toMatch(/supported are gzip,br/);
      expect(res.headers.get("accept-encoding"), what).toBe("gzip,br");
    }
  });

  it("refuses a deadline shorter than the server accepts with 400", async () => {
    for (const timeout of ["0", "1", "99"]) {
      const result = await answer(rpc("ListProducts"), { method: "POST", headers: { ...unary, "connect-timeout-ms": timeout }, body: Buffer.alloc(0) });
      expect({ timeout, status: result.status, code: result.code }).toEqual({ timeout, status: 400, code: "invalid_argument" });
      expect(result.message).toMatch(/connect-timeout-ms/);
    }
    expect(await answer(rpc("ListProducts"), { method: "POST", headers: { ...unary, "connect-timeout-ms": "100" }, body: Buffer.alloc(0) })).toMatchObject({ status: 200 });
  });

  it("answers a unary request that does not inflate, decode or parse with 400 InvalidArgument and the reason", async () => {
    const auth = await as("m-1");
    const cases: [string, string, RequestInit, RegExp][] = [
      ["protobuf that is not", rpc("GetOrder"), { method: "POST", headers: { ...unary, ...auth }, body: Buffer.from([0x0a, 0xff, 0xff, 0xff]) }, /parse binary/],
      ["gzip cut short", rpc("GetOrder"), { method: "POST", headers: { ...unary, ...auth, "content-encoding": "gzip" }, body: gzipSync(Buffer.alloc(4096, 1)).subarray(0, 20) }, /decompression failed/],
      ["GET message that is not base64", `${rpc("GetProduct")}?connect=v1&encoding=proto&base64=1&message=%21%21%21`, { method: "GET" }, /base64/],
    ];
    for (const [what, url, init, reason] of cases) {
      const result = await answer(url, init);
      expect({ what, status: result.status, code: result.code }).toEqual({ what, status: 400, code: "invalid_argument" });
      expect(result.message, what).toMatch(reason);
    }
  });

  it("ends a WatchOrder stream whose request is missing, cut or doubled with InvalidArgument", async () => {
    const auth = await as("m-1");
    const message = watchOf(randomUUID());
    const cases: [string, Buffer][] = [
      ["no message", Buffer.alloc(0)],
      ["an envelope longer than the body", envelope(0, message, message.length + 100)],
      ["two messages", Buffer.concat([envelope(0, message), envelope(0, message)])],
      ["a compressed flag without a compression", envelope(1, message)],
    ];
    for (const [what, body] of cases) {
      const result = await answer(rpc("WatchOrder"), { method: "POST", headers: { ...stream, ...auth }, body });
      expect({ what, status: result.status, code: result.code }).toEqual({ what, status: 200, code: "invalid_argument" });
    }
  });
});

describe("ListOrders", () => {
  it("looks at no more than MAX_SCANNED_PER_PAGE listed orders per page, and says where to go on", async () => {
    const listed = Array.from({ length: MAX_SCANNED_PER_PAGE + 500 }, (_, i) => [String(i), randomUUID()]).flat();
    await r.redis.zadd(r.keys("orders", "customer", "scan-c"), ...listed);
    const client = clientAs(base, await as("scan-c"));
    const first = await client.listOrders({ status: OrderStatus.COMPLETED, pageSize: 200 });
    expect(first).toMatchObject({ orders: [], nextPageToken: String(MAX_SCANNED_PER_PAGE) });
    const last = await client.listOrders({ status: OrderStatus.COMPLETED, pageSize: 200, pageToken: first.nextPageToken });
    expect(last).toMatchObject({ orders: [], nextPageToken: "" });
    expect(await codeOf(client.listOrders({ pageToken: "1e300" }))).toBe(Code.InvalidArgument);
  });
});

describe("WatchOrder limits", () => {
  /** Opens a stream on `url` and resolves once its first update arrived; `stop` ends it from the client. */
  async function openWatch(url: string, customer: string, orderId: string) {
    const stop = new AbortController();
    const updates = clientAs(url, await as(customer)).watchOrder({ orderId }, { signal: stop.signal })[Symbol.asyncIterator]();
    const first = await updates.next();
    return { firstOrderId: first.done === true ? undefined : first.value.order?.orderId, stop: () => stop.abort(), rest: updates };
  }

  it("refuses a caller's stream past its cap and any stream past the process's, and frees slots as streams close", async () => {
    const [a, b, c] = [await placed("w-a"), await placed("w-b"), await placed("w-c")];
    const a1 = await openWatch(capped, "w-a", a);
    expect(a1.firstOrderId).toBe(a);
    const a2 = await openWatch(capped, "w-a", a);
    expect(await codeOf(openWatch(capped, "w-a", a))).toBe(Code.ResourceExhausted);
    const b1 = await openWatch(capped, "w-b", b);
    expect(await codeOf(openWatch(capped, "w-c", c))).toBe(Code.ResourceExhausted);
    a1.stop();
    const c1 = await waitFor(() => openWatch(capped, "w-c", c), { what: "a slot freed by the closed stream", timeoutMs: 10_000 });
    expect(c1.firstOrderId).toBe(c);
    for (const stream of [a2, b1, c1]) stream.stop();
  });

  it("ends a stream cleanly once its lifetime is over", async () => {
    const orderId = await placed("w-d");
    const started = Date.now();
    const stream = await openWatch(shortLived, "w-d", orderId);
    expect(stream.firstOrderId).toBe(orderId);
    const deadline = new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error("the stream was still open after 10 s")), 10_000).unref());
    const end = await Promise.race([stream.rest.next(), deadline]);
    expect(end.done).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });
});
