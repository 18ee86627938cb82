/**
 * The order API over real HTTP, Kafka and Redis: placing (REST and Connect), idempotency keys
 * (racing retries, a key left leased by a crashed attempt, a 503 that keeps the key's order),
 * malformed input of many kinds (400 naming the field, never 500), 404s, 503 when Kafka cannot
 * acknowledge, the PENDING view written on acceptance, and the read model fed by the order
 * lifecycle with its rebuild.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCompletedSchema, OrderValidatedSchema, PaymentCompletedSchema, type OrderCreated } from "../../gen/orderflow/v1/events_pb.ts";
import { OrderService } from "../../gen/orderflow/v1/order_service_pb.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { freePort } from "../../test/harness/processes.ts";
import { testAuth } from "../../test/harness/auth.ts";
import { bearer } from "../cli/tokens.ts";
import type { Keys } from "../../lib/redis.ts";
import { liveKeys } from "./generations.ts";
import { OrderProjection } from "./projection.ts";
import { buildOrder } from "./service.ts";
import { placeOrderRequestOf } from "./http.ts";
import { IdempotencyKeys } from "./idempotency.ts";
import { rebuildProjection } from "./rebuild.ts";

let t: TestKafka;
let r: TestRedis;
let service: RunningService;
let base: string;
let publisher: Publisher;
/** Customer c-1's Authorization header: validBody() orders are c-1's. */
let asC1: Record<string, string>;
/** A Connect transport calling as c-1. */
let c1Transport: ReturnType<typeof createConnectTransport>;

async function startOrderService(env: Record<string, string>) {
  const port = await freePort();
  const running = await startService("order", buildOrder({ ...env, HTTP_PORT: String(port) }), env);
  return { running, port };
}

beforeAll(async () => {
  t = await openTestKafka("order-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await r.redis.sadd(r.keys("products"), "laptop", "mouse");
  await r.redis.hset(r.keys("product", "laptop"), { name: "Laptop", currency: "USD", price_minor: "99999" });
  await r.redis.hset(r.keys("stock", "laptop"), { available: "7", reserved: "0", committed: "0" });
  await r.redis.hset(r.keys("product", "mouse"), { name: "Mouse", currency: "USD", price_minor: "2500" });
  const started = await startOrderService(serviceEnv(t, r.prefix));
  service = started.running;
  base = `http://127.0.0.1:${started.port}`;
  publisher = await createPublisher(t.kafka, t.config);
  asC1 = bearer(await testAuth().credentials.forCustomer("c-1"));
  const authorization = asC1["authorization"] ?? "";
  const asCustomer: Interceptor = (next) => (req) => {
    req.header.set("authorization", authorization);
    return next(req);
  };
  c1Transport = createConnectTransport({ baseUrl: base, httpVersion: "1.1", interceptors: [asCustomer] });
});

afterAll(async () => {
  await publisher?.disconnect();
  await service?.stop();
  await r?.close();
  await t?.close();
});

const validBody = () => ({
  customer_id: "c-1",
  customer_email: "ada@example.com",
  currency: "USD",
  items: [{ product_id: "laptop", quantity: 1, price: 999.99 }, { product_id: "mouse", quantity: 2, price: "25.00" }],
  payment: { method: "card", card_number: "4242424242424242" },
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/orders`, { method: "POST", headers: { "content-type": "application/json", ...asC1, ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

describe("placing orders", () => {
  it("accepts a valid order with 202 once orders.created is acknowledged, with the card tokenized", async () => {
    const watch = await watchTopics(t, ["orders.created"]);
    const res = await post(validBody());
    expect(res.status).toBe(202);
    const body = (await res.json()) as { order_id: string; status: string };
    expect(body.status).toBe("PENDING");
    const created = (await watch.next(body.order_id, "orders.created")).message as unknown as OrderCreated;
    expect(created.total?.amountMinor).toBe(104999n);
    expect(created.payment?.cardLast4).toBe("4242");
    expect(created.payment?.token).not.toContain("4242424242424242");
    await watch.close();
  });

  it("writes the PENDING view as it accepts, under the orders.created record's event id, so the record's replay changes nothing", async () => {
    const watch = await watchTopics(t, ["orders.created"]);
    const { order_id: orderId } = (await (await post(validBody())).json()) as { order_id: string };
    const order = (await (await fetch(`${base}/orders/${orderId}`, { headers: asC1 })).json()) as Record<string, unknown>;
    expect(order).toMatchObject({ status: "PENDING", customer_id: "c-1", total: "1049.99", card_last4: "4242", version: 1 });
    const record = await watch.next(orderId, "orders.created");
    await watch.close();
    const { events } = (await (await fetch(`${base}/orders/${orderId}/events`, { headers: asC1 })).json()) as { events: { event_id: string; topic: string; occurred_at: string }[] };
    expect(events).toEqual([expect.objectContaining({ event_id: record.envelope.eventId, topic: "orders.created", occurred_at: order["created_at"] })]);
    const projection = new OrderProjection(service.runtime.redis, service.runtime.keys);
    expect(await projection.apply("orders.created", record)).toBe(false);
    expect(((await (await fetch(`${base}/orders/${orderId}`, { headers: asC1 })).json()) as { version: number }).version).toBe(1);
  });

  it("returns the same order for the same Idempotency-Key and body, 409 for another body", async () => {
    const key = randomUUID();
    const first = (await (await post(validBody(), { "idempotency-key": key })).json()) as { order_id: string };
    const again = await post(validBody(), { "idempotency-key": key });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { order_id: string }).order_id).toBe(first.order_id);
    const other = await post({ ...validBody(), customer_email: "grace@example.com" }, { "idempotency-key": key });
    expect(other.status, await other.clone().text()).toBe(409);
  });

  it("lets exactly one of racing retries of a key publish: one order id on orders.created, every 202 with it", async () => {
    const watch = await watchTopics(t, ["orders.created"]);
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(validBody(), { "idempotency-key": key })));
    expect(answers.every((res) => res.status === 202 || res.status === 409)).toBe(true);
    const ids = new Set(await Promise.all(answers.filter((res) => res.status === 202).map(async (res) => ((await res.json()) as { order_id: string }).order_id)));
    expect(ids.size).toBe(1);
    const [orderId] = [...ids];
    await watch.next(orderId ?? "", "orders.created");
    const forKey = watch.seen.filter((s) => (s.record.message as unknown as OrderCreated).idempotencyKey === key);
    expect(forKey.map((s) => s.record.envelope.orderId)).toEqual([orderId]);
    await watch.close();
  });

  it("takes over a key a crashed attempt left leased once its lease ran out, and publishes the order it bound", async () => {
    const env = serviceEnv(t, r.prefix, { KAFKA_DELIVERY_TIMEOUT_MS: "2000", IDEMPOTENCY_LEASE_MS: "2500", IDEMPOTENCY_SECRET: "crash-test" });
    const leased = await startOrderService(env);
    const watch = await watchTopics(t, ["orders.created"]);
    try {
      const key = randomUUID();
      const body = validBody();
      // The crashed attempt: it claimed the key (as the service would) and died before publishing.
      const keys = new IdempotencyKeys(r.redis, r.keys, { leaseMs: 2500, secret: "crash-test" });
      const crashed = await keys.claim(key, await keys.fingerprint(placeOrderRequestOf(body, key)), { orderId: randomUUID(), eventId: randomUUID(), createdAtMs: Date.now() });
      if (crashed.kind !== "claimed") throw new Error(`the key was not fresh: ${crashed.kind}`);
      const postLeased = () => fetch(`http://127.0.0.1:${leased.port}/orders`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key, ...asC1 }, body: JSON.stringify(body) });
      expect((await postLeased()).status).toBe(409);
      const accepted = await waitFor(async () => {
        const res = await postLeased();
        return res.status === 202 ? ((await res.json()) as { order_id: string }) : undefined;
      }, { timeoutMs: 15_000, intervalMs: 200, what: "the lease to be taken over" });
      expect(accepted.order_id).toBe(crashed.binding.orderId);
      const record = await watch.next(crashed.binding.orderId, "orders.created");
      expect(record.envelope.eventId).toBe(crashed.binding.eventId);
      expect((record.message as unknown as OrderCreated).idempotencyKey).toBe(key);
    } finally {
      await watch.close();
      await leased.running.stop();
    }
  });

  it.each<[string, unknown, string]>([
    ["not JSON", "{oops", "(body)"],
    ["an array", [], "(body)"],
    ["a negative quantity", { ...validBody(), items: [{ product_id: "laptop", quantity: -1, price: "1.00" }] }, "items[0].quantity"],
    ["no items", { ...validBody(), items: [] }, "items"],
    ["too many items", { ...validBody(), items: Array.from({ length: 101 }, () => ({ product_id: "mouse", quantity: 1, price: "25.00" })) }, "items"],
    ["a bad email", { ...validBody(), customer_email: "nope" }, "customer_email"],
    ["a bad currency", { ...validBody(), currency: "usd" }, "currency"],
    ["an unsupported currency", { ...validBody(), currency: "XXX" }, "currency"],
    ["too many decimals", { ...validBody(), items: [{ product_id: "laptop", quantity: 1, price: "9.999" }] }, "items[0].price"],
    ["a string quantity", { ...validBody(), items: [{ product_id: "laptop", quantity: "lots", price: "1.00" }] }, "(body)"],
    ["an unknown field", { ...validBody(), coupon: "FREE" }, "coupon"],
    ["no payment", { ...validBody(), payment: undefined }, "payment"],
    ["a non-Luhn card", { ...validBody(), payment: { method: "card", card_number: "4242424242424241" } }, "payment.card_number"],
    ["a wrong total_amount", { ...validBody(), total_amount: 1 }, "total_amount"],
    ["a bad product id", { ...validBody(), items: [{ product_id: "../etc", quantity: 1, price: "1.00" }] }, "items[0].product_id"],
    ["a total beyond int64", { ...validBody(), currency: "BHD", items: Array.from({ length: 10 }, () => ({ product_id: "mouse", quantity: 1000, price: "999999999999.999" })) }, "items"],
  ])("refuses %s with 400", async (_name, body, field) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { error: string; violations?: { field: string }[] };
    if (field === "(body)") expect(answer.error.length).toBeGreaterThan(0);
    else expect(answer.violations?.map((v) => v.field)).toContain(field);
  });

  it("gives Connect clients InvalidArgument with the violations as a typed detail", async () => {
    const client = createClient(OrderService, c1Transport);
    const err = await client.placeOrder({ customerId: "c-1", customerEmail: "nope", currency: "USD", items: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    const [violations] = (err as ConnectError).findDetails(ViolationsSchema);
    const fields = violations?.violations.map((v) => v.field?.elements.map((e) => e.fieldName).join("."));
    expect(fields).toEqual(expect.arrayContaining(["customer_email", "items", "payment"]));
  });

  it("refuses an oversized body with 413 and keeps serving", async () => {
    const res = await post({ ...validBody(), customer_id: "x".repeat(70 * 1024) });
    expect(res.status).toBe(413);
    expect((await post(validBody())).status).toBe(202);
  });

  it("answers 404 for an unknown order and 400 for a malformed id", async () => {
    const unknown = await fetch(`${base}/orders/${randomUUID()}`, { headers: asC1 });
    expect(unknown.status, await unknown.clone().text()).toBe(404);
    expect((await fetch(`${base}/orders/not-a-uuid`, { headers: asC1 })).status).toBe(400);
    expect((await fetch(`${base}/products/unicorn`)).status).toBe(404);
  });

  it("answers 503 with Retry-After when Kafka cannot acknowledge, keeps the key bound, and accepts the retry under that order", async () => {
    const orphan = await startOrderService(serviceEnv(t, r.prefix, { TOPIC_PREFIX: `missing-${randomUUID().slice(0, 6)}.`, KAFKA_DELIVERY_TIMEOUT_MS: "1500" }));
    const key = randomUUID();
    try {
      const res = await fetch(`http://127.0.0.1:${orphan.port}/orders`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key, ...asC1 }, body: JSON.stringify(validBody()) });
      expect(res.status, await res.clone().text()).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
    } finally {
      await orphan.running.stop();
    }
    const bound = await r.redis.hgetall(r.keys("idem", key));
    expect(bound).toMatchObject({ state: "pending", lease_until: "0" });
    const watch = await watchTopics(t, ["orders.created"]);
    const retried = await post(validBody(), { "idempotency-key": key });
    expect(retried.status).toBe(202);
    expect(((await retried.json()) as { order_id: string }).order_id).toBe(bound["order_id"]);
    expect((await watch.next(bound["order_id"] ?? "", "orders.created")).envelope.eventId).toBe(bound["event_id"]);
    await watch.close();
  });
});

describe("reading orders", () => {
  it("serves the catalog with live availability", async () => {
    const res = await fetch(`${base}/products`);
    const { products } = (await res.json()) as { products: { sku: string; price: string; available: number }[] };
    expect(products.find((p) => p.sku === "laptop")).toEqual({ sku: "laptop", name: "Laptop", currency: "USD", price: "999.99", available: 7 });
  });

  it("derives the order from its lifecycle events, over REST and Connect, and watches it to the end", async () => {
    const { order_id: orderId } = (await (await post(validBody())).json()) as { order_id: string };
    const client = createClient(OrderService, c1Transport);
    const seen: OrderStatus[] = [];
    const watching = (async () => {
      for await (const update of client.watchOrder({ orderId })) seen.push(update.order?.status ?? OrderStatus.UNSPECIFIED);
    })();
    // The watch reports the order as it is before anything changes it.
    await waitFor(() => seen.length > 0, { what: "the watch's first update" });
    await publisher.publish("orders.validated", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
    await publisher.publish("payments.completed", PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), { orderId });
    await publisher.publish("orders.completed", OrderCompletedSchema, sampleOf(OrderCompletedSchema, orderId), { orderId });
    await watching;
    expect(seen[0]).toBe(OrderStatus.PENDING);
    expect(seen.at(-1)).toBe(OrderStatus.COMPLETED);

    // The projection reads each topic on its own: orders.completed may be applied before
    // orders.validated (the watch then ends at COMPLETED with one event still to come).
    const order = await waitFor(async () => {
      const read = (await (await fetch(`${base}/orders/${orderId}`, { headers: asC1 })).json()) as { status: string; total: string; version: number };
      return read.version === 3 ? read : undefined;
    }, { what: "both lifecycle events to be applied" });
    expect(order).toMatchObject({ status: "COMPLETED", total: "1049.99", version: 3 });
    // payments.completed is no longer read: the history holds the order's lifecycle only.
    const { events } = (await (await fetch(`${base}/orders/${orderId}/events`, { headers: asC1 })).json()) as { events: { topic: string }[] };
    expect(events.map((e) => e.topic)).toEqual(["orders.created", "orders.validated", "orders.completed"]);
    const viaConnect = await client.getOrder({ orderId });
    expect(viaConnect.order?.status).toBe(OrderStatus.COMPLETED);
    const listed = (await (await fetch(`${base}/orders?customer_id=c-1&status=completed&page_size=200`, { headers: asC1 })).json()) as { orders: { order_id: string }[] };
    expect(listed.orders.map((o) => o.order_id)).toContain(orderId);
  });

  it("rebuilds the read model from orders.created and the lifecycle with the same result as live", async () => {
    const { order_id: completed } = (await (await post(validBody())).json()) as { order_id: string };
    const { order_id: validated } = (await (await post(validBody())).json()) as { order_id: string };
    for (const orderId of [completed, validated]) await publisher.publish("orders.validated", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
    await publisher.publish("orders.completed", OrderCompletedSchema, sampleOf(OrderCompletedSchema, completed), { orderId: completed });
    const status = async (orderId: string) => ((await (await fetch(`${base}/orders/${orderId}`, { headers: asC1 })).json()) as { status?: string }).status;
    await waitFor(async () => (await status(completed)) === "COMPLETED" && (await status(validated)) === "VALIDATED", { what: "COMPLETED and VALIDATED" });
    const live = new OrderProjection(service.runtime.redis, service.runtime.keys);
    const stateOf = async (projection: OrderProjection, keys: Keys, redis: typeof r.redis) => {
      const live = await liveKeys(redis, keys);
      return Promise.all([completed, validated].map(async (orderId) => ({
        view: await projection.view(orderId),
        history: await projection.history(orderId),
        listedAt: await redis.zscore(live("orders", "customer", "c-1"), orderId),
      })));
    };
    const before = await stateOf(live, service.runtime.keys, service.runtime.redis);
    expect(before.map((o) => o.history.length)).toEqual([3, 2]);

    const rebuilt = await openTestRedis();
    const fresh = new OrderProjection(rebuilt.redis, rebuilt.keys);
    const result = await rebuildProjection({ admin: t.admin, config: t.config, projection: fresh });
    expect(result.eventsApplied).toBeGreaterThanOrEqual(5);
    expect(await stateOf(fresh, rebuilt.keys, rebuilt.redis)).toEqual(before);
    const again = await rebuildProjection({ admin: t.admin, config: t.config, projection: fresh });
    expect(again).toEqual(result);
    expect(await stateOf(fresh, rebuilt.keys, rebuilt.redis)).toEqual(before);
    await rebuilt.close();
  });
});
