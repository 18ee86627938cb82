/**
 * The admin API over real HTTP (Connect, and gRPC over HTTP/2), Kafka and Redis, with the order
 * service and the orchestrator running in-process on this test's topics and keys: the token guard,
 * bounded reads (compression bombs refused without being inflated, a wrong token refused before
 * the body is read), every RPC, a poison record dead-lettered by a running service and replayed once (audited, and
 * skipped when replayed again), a compensation that parks and is retried, and pausing a running
 * service's consumption.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import {
  InventoryReservationFailedSchema,
  OrderCreatedSchema,
  PaymentAction,
  PaymentCompletedSchema,
  type AuditRecorded,
  type PaymentRequested,
} from "../../gen/orderflow/v1/events_pb.ts";
import { topicSpec } from "../../infra/topics.ts";
import { flattenHeaders } from "../../lib/codec/envelope.ts";
import { isConsumptionPaused } from "../../lib/control.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { answerBeforeBody, brotliBomb, connectUnary, gzipBomb, withPeakRssGrowth } from "../../test/harness/hostile-bodies.ts";
import { openTestKafka, readRecords, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildOrchestrator } from "../orchestrator/service.ts";
import { liveKeys } from "../order/generations.ts";
import { OrderProjection } from "../order/projection.ts";
import { buildOrder } from "../order/service.ts";
import { buildAdmin } from "./service.ts";

const TOKEN = `test-${randomUUID()}`;

let t: TestKafka;
let r: TestRedis;
let publisher: Publisher;
let order: RunningService;
let orchestrator: RunningService;
let admin: RunningService;
let baseUrl: string;
let client: Client<typeof AdminService>;
let watch: Awaited<ReturnType<typeof watchTopics>>;

const bearer = (token: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const clientWith = (interceptors: Interceptor[], url = baseUrl) => createClient(AdminService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors }));

/** Starts an admin service on `env` and resolves with it and the port it bound. */
async function startAdmin(env: Record<string, string>): Promise<{ service: RunningService; port: number }> {
  let port = 0;
  const service = await startService("admin", buildAdmin(env, (bound) => (port = bound)), env);
  return { service, port };
}

async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

/** Audit records of one action, decoded. */
const audits = (action: string) => watch.seen.filter((s) => s.topic === "orders.audit").map((s) => s.record.message as unknown as AuditRecorded).filter((a) => a.action === action);

/** Places an order straight on orders.created (the orchestrator and the projection take it from there). */
async function createOrder(): Promise<string> {
  const orderId = randomUUID();
  await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
  return orderId;
}

beforeAll(async () => {
  t = await openTestKafka("admin-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await r.redis.sadd(r.keys("products"), "laptop", "mouse");
  await r.redis.hset(r.keys("product", "laptop"), { name: "Laptop", currency: "USD", price_minor: "99999" });
  await r.redis.hset(r.keys("stock", "laptop"), { available: "7", reserved: "0", committed: "0" });
  await r.redis.hset(r.keys("product", "mouse"), { name: "Mouse", currency: "USD", price_minor: "2500" });
  await r.redis.hset(r.keys("stock", "mouse"), { available: "20", reserved: "0", committed: "0" });
  const env = serviceEnv(t, r.prefix, {
    ADMIN_TOKEN: TOKEN,
    ADMIN_PORT: "0",
    HTTP_PORT: "0",
    // A refund nobody answers parks after one attempt, 300 ms after it was sent.
    SAGA_COMPENSATION_MAX_ATTEMPTS: "1",
    SAGA_COMPENSATION_RETRY_MS: "300",
    SAGA_TICK_MS: "50",
    DASHBOARD_SERVICES: "",
  });
  watch = await watchTopics(t, ["orders.audit", "orders.validated", "payments.requested"]);
  publisher = await createPublisher(t.kafka, t.config);
  order = await startService("order", buildOrder(env), env);
  orchestrator = await startService("orchestrator", buildOrchestrator(env), env);
  const started = await startAdmin(env);
  admin = started.service;
  baseUrl = `http://127.0.0.1:${started.port}`;
  client = clientWith([bearer(TOKEN)]);
});

afterAll(async () => {
  await admin?.stop();
  await orchestrator?.stop();
  await order?.stop();
  await watch?.close();
  await publisher?.disconnect();
  await r?.close();
  await t?.close();
});

describe("the token guard", () => {
  it("refuses calls without a token or with a wrong one", async () => {
    const none = await rejection(clientWith([]).getStock({}));
    expect(none.code).toBe(Code.Unauthenticated);
    const wrong = await rejection(clientWith([bearer(`${TOKEN}x`)]).getStock({}));
    expect(wrong.code).toBe(Code.Unauthenticated);
    expect(wrong.rawMessage).toBe("invalid bearer token");
    expect((await client.getStock({})).levels.length).toBe(2);
  });

  it("refuses every call when ADMIN_TOKEN is not set, and says so", async () => {
    const env = serviceEnv(t, r.prefix, { ADMIN_PORT: "0", DASHBOARD_SERVICES: "" });
    const open = await startAdmin(env);
    try {
      const err = await rejection(clientWith([bearer("anything")], `http://127.0.0.1:${open.port}`).getStock({}));
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(/ADMIN_TOKEN is not set/);
    } finally {
      await open.service.stop();
    }
  });
});

describe("bounded reads", () => {
  /** Growth of this process's RSS that would mean a bomb was inflated (the smaller one is 60 MiB on its own). */
  const INFLATED_MIB = 32;
  const getStock = () => `${baseUrl}/orderflow.v1.AdminService/GetStock`;

  it("refuses gzip and brotli bombs with ResourceExhausted without inflating them, and keeps serving", async () => {
    for (const [encoding, bomb] of [
      ["gzip", gzipBomb(60)],
      ["br", await brotliBomb(1024)],
    ] as const) {
      const { result, growthMiB } = await withPeakRssGrowth(() => connectUnary(getStock(), bomb, encoding, { authorization: `Bearer ${TOKEN}` }));
      expect(growthMiB, `${encoding}: RSS grew by ${growthMiB.toFixed(1)} MiB`).toBeLessThan(INFLATED_MIB);
      expect(result.code, encoding).toBe("resource_exhausted");
    }
    expect((await client.getStock({})).levels.length).toBe(2);
  });

  it("answers a wrong token or none with 401 before reading (or inflating) the body", async () => {
    const headers = { "content-type": "application/proto", "connect-protocol-version": "1", "content-encoding": "gzip", "transfer-encoding": "chunked" };
    const firstBytes = gzipBomb(60).subarray(0, 1024);
    for (const auth of [{ authorization: `Bearer ${TOKEN}x` }, {}] as Record<string, string>[]) {
      expect(await answerBeforeBody(getStock(), { ...headers, ...auth }, firstBytes)).toEqual({ status: 401, code: "unauthenticated" });
    }
  });

  it("refuses a body declared larger than the limit with 413 before reading it", async () => {
    const headers = { "content-type": "application/proto", "connect-protocol-version": "1", "content-length": String(50 * 1024 * 1024), authorization: `Bearer ${TOKEN}` };
    expect(await answerBeforeBody(getStock(), headers, Buffer.alloc(1024))).toEqual({ status: 413, code: "resource_exhausted" });
  });
});

describe("one port", () => {
  it("redirects / to the dashboard and serves it", async () => {
    const root = await fetch(`${baseUrl}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/dashboard");
    expect((await fetch(`${baseUrl}/dashboard`)).status).toBe(200);
  });

  it("serves gRPC over HTTP/2 as well", async () => {
    const grpc = createClient(AdminService, createGrpcTransport({ baseUrl, interceptors: [bearer(TOKEN)] }));
    const { levels } = await grpc.getStock({ sku: "laptop" });
    expect(levels.map((l) => l.sku)).toEqual(["laptop"]);
    const err = await rejection(createClient(AdminService, createGrpcTransport({ baseUrl })).getStock({}));
    expect(err.code).toBe(Code.Unauthenticated);
  });
});

describe("GetOrderDetail", () => {
  it("returns the order, its events and the saga", async () => {
    const orderId = await createOrder();
    await watch.next(orderId, "orders.validated");
    const detail = await waitFor(
      async () => {
        const answer = await client.getOrderDetail({ orderId }).catch(() => undefined);
        return answer?.order?.status === OrderStatus.VALIDATED && answer.events.length >= 1 ? answer : undefined;
      },
      { what: "the order to be VALIDATED in the read model" },
    );
    expect(detail.order?.orderId).toBe(orderId);
    // Published straight to Kafka (no order service wrote it at acceptance): the view is built from orders.validated.
    expect(detail.events.map((e) => e.topic)).toEqual(["orders.validated"]);
    expect(detail.saga).toMatchObject({ step: "AWAITING_PAYMENT_AND_STOCK", paymentDone: false, stockReserved: false });
    expect(detail.saga?.deadline).toBeDefined();
  });

  it("answers NotFound for an unknown order and InvalidArgument naming the field for a malformed id", async () => {
    expect((await rejection(client.getOrderDetail({ orderId: randomUUID() }))).code).toBe(Code.NotFound);
    const invalid = await rejection(client.getOrderDetail({ orderId: "not-a-uuid" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.rawMessage).toMatch(/^order_id: /);
  });
});

describe("GetStock and SetStock", () => {
  it("reads every SKU or one, and sets stock with an audit record", async () => {
    expect((await client.getStock({})).levels.map((l) => l.sku)).toEqual(["laptop", "mouse"]);
    const { level } = await client.setStock({ sku: "mouse", available: 42n, actor: "ada" });
    expect(level).toMatchObject({ sku: "mouse", available: 42n, onHand: 42n });
    expect((await client.getStock({ sku: "mouse" })).levels[0]?.available).toBe(42n);
    const audit = await waitFor(() => audits("stock_set").find((a) => a.target === "mouse"), { what: "the stock_set audit" });
    expect(audit).toMatchObject({ actor: "admin:ada", detail: "available 20 -> 42" });
  });

  it("refuses unknown SKUs with NotFound and invalid requests naming the fields", async () => {
    expect((await rejection(client.getStock({ sku: "unicorn" }))).code).toBe(Code.NotFound);
    expect((await rejection(client.setStock({ sku: "unicorn", available: 1n, actor: "ada" }))).code).toBe(Code.NotFound);
    const invalid = await rejection(client.setStock({ sku: "../etc", available: -1n, actor: "" }));
    expect(invalid.code).toBe(Code.InvalidArgument);
    for (const field of ["sku", "available", "actor"]) expect(invalid.rawMessage).toMatch(new RegExp(`(^|; )${field}: `));
  });
});

describe("dead letters", () => {
  it("lists a record a running service dead-lettered, replays it once with an audit, and skips it the second time", async () => {
    const orderId = randomUUID();
    // No envelope headers: the orchestrator cannot read it and dead-letters it.
    await publisher.send(t.topic("orders.cancel.requested"), { key: orderId, value: Buffer.from("not a protobuf"), headers: { "order-id": orderId } });
    const letter = await waitFor(
      async () => (await client.listDeadLetters({ topic: "orders.cancel.requested" })).deadLetters.find((d) => d.key === orderId),
      { what: "the dead letter" },
    );
    expect(letter).toMatchObject({ dlqTopic: "orders.cancel.requested.dlq", originTopic: "orders.cancel.requested", errorClass: "poison.missing-header", attempts: 1 });
    expect((await client.listDeadLetters({})).deadLetters.some((d) => d.key === orderId)).toBe(true);

    const replay = await client.replayDeadLetters({ topic: "orders.cancel.requested", offsets: [letter.offset], actor: "ada" });
    expect(replay.replayed).toBe(1);
    expect(replay.records[0]?.offset).toBe(letter.offset);
    const position = `orders.cancel.requested.dlq/${letter.partition}/${letter.offset}`;

    const records = await readRecords(t, t.topic("orders.cancel.requested"), 2);
    const replayed = records.map((rec) => ({ ...rec, headers: flattenHeaders(rec.headers) })).find((rec) => rec.headers["replayed-from"] === position);
    // The original headers, no dlq-* ones, where it came from and who sent it, and the replay's own trace context.
    expect(replayed?.headers).toEqual({ "order-id": orderId, "replayed-from": position, "replayed-by": "ada", traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/) as unknown });
    expect(replayed?.key?.toString()).toBe(orderId);
    expect(replayed?.value?.toString()).toBe("not a protobuf");

    const audit = await waitFor(() => audits("dlq_replayed").find((a) => a.target === position), { what: "the dlq_replayed audit" });
    expect(audit).toMatchObject({ actor: "admin:ada", orderId });
    expect(audit.occurredAt).toBeDefined();

    const again = await client.replayDeadLetters({ topic: "orders.cancel.requested", offsets: [letter.offset], actor: "ada" });
    expect(again.replayed).toBe(0);
    // The replay is remembered for longer than the DLQ keeps the record it names.
    expect(await r.redis.pttl(r.keys("admin", "replayed"))).toBeGreaterThan(topicSpec("orders.cancel.requested.dlq").retentionMs);

    // The replayed record is still poison: it is dead-lettered again, at a new offset. A replay by
    // error class takes that one and skips the one replayed before.
    await waitFor(
      async () => (await client.listDeadLetters({ topic: "orders.cancel.requested" })).deadLetters.filter((d) => d.key === orderId).length >= 2,
      { what: "the replayed record to be dead-lettered again" },
    );
    const byClass = await client.replayDeadLetters({ topic: "orders.cancel.requested", errorClass: "poison.missing-header", actor: "ada" });
    expect(byClass.records.map((d) => d.offset)).not.toContain(letter.offset);
    expect(byClass.replayed).toBeGreaterThanOrEqual(1);
    expect(audits("dlq_replayed").filter((a) => a.target === position)).toHaveLength(1);
  });

  it("refuses a replay that names nothing, and topics outside the catalog", async () => {
    const nothing = await rejection(client.replayDeadLetters({ topic: "orders.created", actor: "ada" }));
    expect(nothing.code).toBe(Code.InvalidArgument);
    expect(nothing.rawMessage).toMatch(/^offsets: /);
    const unknown = await rejection(client.listDeadLetters({ topic: "orders.nope" }));
    expect(unknown.code).toBe(Code.InvalidArgument);
    expect(unknown.rawMessage).toMatch(/^topic: /);
    const missing = await rejection(client.replayDeadLetters({ topic: "payments.failed", offsets: [5n], actor: "ada" }));
    expect(missing.code).toBe(Code.NotFound);
  });
});

describe("parked compensations", () => {
  /** REFUND requests the orchestrator sent for an order. */
  const refunds = (orderId: string) => watch.of(orderId, "payments.requested").filter((rec) => (rec.message as unknown as PaymentRequested).action === PaymentAction.REFUND);
  const parkedOf = async (orderId: string) => (await client.listParkedCompensations({})).compensations.filter((c) => c.orderId === orderId);

  it("lists a refund that parked, retries it (sent again, parks again), then marks it handled by hand", async () => {
    const orderId = await createOrder();
    await watch.next(orderId, "orders.validated");
    // Charged, then stock short: the saga fails and asks for a refund nobody answers.
    await publisher.publish("payments.completed", PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), { orderId });
    await publisher.publish("inventory.failed", InventoryReservationFailedSchema, sampleOf(InventoryReservationFailedSchema, orderId), { orderId });
    const [parked] = await waitFor(async () => {
      const found = await parkedOf(orderId);
      return found.length > 0 ? found : undefined;
    }, { what: "the refund to park" });
    expect(parked).toMatchObject({ action: "REFUND", attempts: 1 });
    await waitFor(() => refunds(orderId).length === 1, { what: "the first refund request" });
    expect((await client.getOrderDetail({ orderId })).saga?.step).toBe("COMPENSATION_PARKED");

    const retried = await client.resolveParkedCompensation({ id: parked.id, retry: true, actor: "ada", note: "gateway is back" });
    expect(retried.compensation?.id).toBe(parked.id);
    await waitFor(() => refunds(orderId).length === 2, { what: "the refund to be sent again" });
    const [again] = await waitFor(async () => {
      const found = await parkedOf(orderId);
      return found.length > 0 && found[0]?.id !== parked.id ? found : undefined;
    }, { what: "the retried refund to park again" });

    await client.resolveParkedCompensation({ id: again.id, retry: false, actor: "ada", note: "refunded by hand" });
    expect(await parkedOf(orderId)).toEqual([]);
    const resolved = await waitFor(() => {
      const found = audits("compensation_resolved").filter((a) => a.orderId === orderId);
      return found.length === 2 ? found : undefined;
    }, { what: "both compensation_resolved audits" });
    expect(resolved.map((a) => a.detail).sort()).toEqual(["REFUND handled by hand: refunded by hand", "REFUND retried: gateway is back"]);
    expect((await rejection(client.resolveParkedCompensation({ id: again.id, retry: true, actor: "ada" }))).code).toBe(Code.NotFound);
  });
});

describe("pausing consumption", () => {
  it("stops a running service from handling records until resumed, with its readiness saying so", async () => {
    const ready = async () =>
      ((await (await fetch(`http://127.0.0.1:${order.ops.port}/health/ready`)).json()) as { status: string; checks: Record<string, { status: string; detail?: unknown }> });
    expect((await client.pauseConsumption({ service: "order", actor: "ada" })).paused).toBe(true);
    expect(await isConsumptionPaused(r.redis, r.keys, "order")).toBe(true);
    await waitFor(async () => (await ready()).checks["control"]?.status === "degraded", { what: "the order service to report the pause" });
    expect((await ready()).checks["control"]?.detail).toBe("consumption paused by an operator");

    const orderId = await createOrder();
    // The orchestrator, not paused, reads the same orders.created record and answers; by then the
    // projection (paused) would have read it too, had it not been paused.
    await watch.next(orderId, "orders.validated");
    const projection = new OrderProjection(r.redis, r.keys);
    expect(await projection.view(orderId)).toBeUndefined();

    expect((await client.resumeConsumption({ service: "order", actor: "ada" })).paused).toBe(false);
    await waitFor(async () => (await projection.view(orderId)) !== undefined, { what: "the projection to catch up after resume" });
    await waitFor(async () => (await ready()).checks["control"]?.status === "ok", { what: "readiness back to ok" });
    expect(audits("consumption_paused").some((a) => a.target === "order" && a.actor === "admin:ada")).toBe(true);
    await waitFor(() => audits("consumption_resumed").some((a) => a.target === "order"), { what: "the consumption_resumed audit" });
  });

  it("refuses a service it does not know, naming the field", async () => {
    const err = await rejection(client.pauseConsumption({ service: "shipping", actor: "ada" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^service: unknown service shipping/);
  });
});

describe("RebuildProjection", () => {
  it("rebuilds the read model from the log into a new generation, with an audit record", async () => {
    const orderId = await createOrder();
    const projection = new OrderProjection(r.redis, r.keys);
    await waitFor(async () => (await projection.view(orderId))?.["status"] === String(OrderStatus.VALIDATED), { what: "the order in the read model" });
    await r.redis.hset((await liveKeys(r.redis, r.keys))("order", orderId), "status", String(OrderStatus.CANCELLED), "status_rank", "9");
    const result = await client.rebuildProjection({ actor: "ada" });
    expect(result.orders).toBeGreaterThanOrEqual(1n);
    expect(result.eventsApplied).toBeGreaterThanOrEqual(2n);
    expect((await client.getOrderDetail({ orderId })).order?.status).toBe(OrderStatus.VALIDATED);
    const audit = await waitFor(() => audits("projection_rebuilt")[0], { what: "the projection_rebuilt audit" });
    expect(audit).toMatchObject({ actor: "admin:ada", detail: `${result.orders} order(s) from ${result.eventsApplied} event(s); 0 order(s) kept events the log no longer has` });
  });
});
