/**
 * The orchestrator's Redis work per consumed record, counted on a real Redis connection set up as
 * the services set theirs up: sequential round trips (commands sent in one turn of the event loop
 * leave in one write and count once) for each record of a completed order, with the saga in memory
 * and after a restart, and for the after-commit clean-up of one commit; then the catalog cache and
 * its invalidation. The consumer's transaction is stood in for by a sink that keeps what is sent.
 */
import { randomUUID } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { OrderStatus, FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import {
  InventoryReservedSchema,
  OrderCreatedSchema,
  OrderFailedSchema,
  OrderValidatedSchema,
  PaymentCompletedSchema,
  PaymentRequestedSchema,
  EmailRequestedSchema,
  OrderCompletedSchema,
} from "../../gen/orderflow/v1/events_pb.ts";
import { decodeRecord, encodeRecord, type DecodedRecord, type OutgoingRecord } from "../../lib/codec/codec.ts";
import { loadConfig } from "../../lib/config.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { createLogger } from "../../lib/log.ts";
import { createRedis, type Redis } from "../../lib/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { catalogVersionKey } from "./catalog.ts";
import { createOrchestrator } from "./handlers.ts";
import { loadSettings } from "./settings.ts";

const config = loadConfig("orchestrator", { TOPIC_PREFIX: "rt." });
const log = createLogger("orchestrator", "fatal");
let r: TestRedis;
let redis: Redis;
let clock = Date.now();

/** Counts sequential round trips: a command sent while none is out in this turn of the event loop starts one. */
function countRoundTrips(client: Redis) {
  let trips = 0;
  let inThisTurn = false;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...args: Parameters<Redis["sendCommand"]>) => {
    if (!inThisTurn) {
      inThisTurn = true;
      trips += 1;
      setImmediate(() => (inThisTurn = false));
    }
    return send(...args);
  };
  return async <T,>(work: () => Promise<T>): Promise<number> => {
    trips = 0;
    await work();
    return trips;
  };
}

/** Stands in for the consumer's transaction: keeps the records sent and the after-commit steps. */
function transaction() {
  const sent: { topic: string; record: OutgoingRecord }[] = [];
  const afterCommit: (() => Promise<void>)[] = [];
  const out: Publisher = {
    send: (topic, record) => {
      sent.push({ topic, record });
      return Promise.resolve({ topic, partition: 0, offset: String(sent.length) });
    },
    publish: () => Promise.reject(new Error("the orchestrator sends encoded records")),
    disconnect: () => Promise.resolve(),
  };
  return { sent, afterCommit, out, commit: () => Promise.all(afterCommit.splice(0).map((step) => step())) };
}

const incoming = <Desc extends DescMessage>(schema: Desc, message: MessageInitShape<Desc>, orderId: string): DecodedRecord =>
  decodeRecord(encodeRecord(schema, message, { key: orderId, orderId, producer: "test", encoding: "binary" }), [schema]);

const recordsOf = (orderId: string) => ({
  created: { topic: "orders.created", record: incoming(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), orderId) },
  paid: { topic: "payments.completed", record: incoming(PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), orderId) },
  reserved: { topic: "inventory.reserved", record: incoming(InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId), orderId) },
});

function orchestrator(tx: ReturnType<typeof transaction>, env: Record<string, string> = {}) {
  const created = createOrchestrator({ config, settings: loadSettings(env), redis, keys: r.keys, publisher: tx.out, log, now: () => clock });
  const handle = ({ topic, record }: { topic: string; record: DecodedRecord }) =>
    created.handle(record, { topic: config.topicPrefix + topic, out: tx.out, afterCommit: (step) => tx.afterCommit.push(step) });
  return { ...created, handle };
}

beforeAll(async () => {
  r = await openTestRedis();
  for (const [sku, price] of [["laptop", "99999"], ["mouse", "2500"]] as const) {
    await r.redis.hset(r.keys("product", sku), { name: sku, currency: "USD", price_minor: price });
  }
  redis = createRedis({ redisUrl: inject("redisUrl") }, log);
});

afterAll(async () => {
  redis?.disconnect();
  await r?.close();
});

describe("Redis round trips per consumed record", () => {
  it("one per record of a completed order; the commit's clean-up one for all its records together", async () => {
    const roundTrips = countRoundTrips(redis);
    const tx = transaction();
    const saga = orchestrator(tx);
    // Warm up: the scripts get loaded and the catalog read once.
    const warm = recordsOf(randomUUID());
    for (const input of [warm.created, warm.paid, warm.reserved]) await saga.handle(input);
    await tx.commit();

    const orderId = randomUUID();
    const order = recordsOf(orderId);
    const other = recordsOf(randomUUID());
    const perRecord = [];
    for (const input of [order.created, other.created, order.paid, other.paid, order.reserved, other.reserved]) perRecord.push(await roundTrips(() => saga.handle(input)));
    expect(perRecord).toEqual([1, 1, 1, 1, 1, 1]);
    // Records with effects leave clean-up steps (the charge answer decides none); one commit, one round trip.
    expect(tx.afterCommit).toHaveLength(4);
    expect(await roundTrips(() => tx.commit())).toBe(1);

    expect(tx.sent.filter((s) => s.record.headers["order-id"] === orderId).map((s) => s.topic.slice(config.topicPrefix.length))).toEqual([
      "orders.validated",
      "payments.requested",
      "orders.completed",
      "notifications.email",
    ]);
    expect(await saga.store.outbox(orderId)).toEqual([]);
    expect((await saga.store.load(orderId)).saga?.state.status).toBe(OrderStatus.COMPLETED);
  });

  it("after a restart (nothing in memory): one for a new order, two for an answer (read, then write)", async () => {
    const roundTrips = countRoundTrips(redis);
    const orderId = randomUUID();
    const order = recordsOf(orderId);
    const before = transaction();
    await orchestrator(before).handle(order.created);
    const restarted = orchestrator(transaction());
    await restarted.catalog.prices(["laptop", "mouse"]);
    expect(await roundTrips(() => restarted.handle(recordsOf(randomUUID()).created))).toBe(1);
    expect(await roundTrips(() => restarted.handle(order.paid))).toBe(2);
    expect(await roundTrips(() => restarted.handle(order.reserved))).toBe(1);
    expect((await restarted.store.load(orderId)).saga?.state.status).toBe(OrderStatus.COMPLETED);
  });

  it("sends the outbox's stored bytes with the envelope: they decode and validate on the next hop", async () => {
    const tx = transaction();
    const orderId = randomUUID();
    const order = recordsOf(orderId);
    const saga = orchestrator(tx);
    for (const input of [order.created, order.paid, order.reserved]) await saga.handle(input);
    const types = [OrderValidatedSchema, PaymentRequestedSchema, OrderCompletedSchema, EmailRequestedSchema];
    const decoded = tx.sent.filter((s) => s.record.headers["order-id"] === orderId).map((s) => decodeRecord(s.record, types));
    expect(decoded.map((d) => d.schema.typeName)).toEqual(types.map((t) => t.typeName));
    expect(decoded.every((d) => d.envelope.producer === "orchestrator" && d.envelope.orderId === orderId)).toBe(true);
    expect(new Set(decoded.map((d) => d.envelope.eventId)).size).toBe(4);
  });

  it("a redelivered record re-sends only its own entries still waiting, with the same event ids", async () => {
    const tx = transaction();
    const orderId = randomUUID();
    const order = recordsOf(orderId);
    const saga = orchestrator(tx);
    await saga.handle(order.created);
    await saga.handle(order.paid);
    const first = tx.sent.splice(0).map((s) => s.record.headers["event-id"]);
    // The transaction aborted: nothing was committed, both records come again.
    tx.afterCommit.splice(0);
    await saga.handle(order.created);
    await saga.handle(order.paid);
    expect(tx.sent.map((s) => s.record.headers["event-id"])).toEqual(first);
  });
});

describe("catalog prices in memory", () => {
  it("validates on the held price until the catalog version moves, then on the new one", async () => {
    const roundTrips = countRoundTrips(redis);
    const tx = transaction();
    const saga = orchestrator(tx);
    await saga.catalog.check();
    await saga.catalog.prices(["laptop", "mouse"]);
    expect(await roundTrips(() => saga.catalog.prices(["laptop", "mouse"]))).toBe(0);

    const key = r.keys("product", "laptop");
    await r.redis.hset(key, "price_minor", "88888");
    // Not bumped yet: still the held price.
    expect((await saga.catalog.prices(["laptop"])).get("laptop")?.priceMinor).toBe(99999n);
    await r.redis.incr(catalogVersionKey(r.keys));
    await saga.catalog.check();
    expect((await saga.catalog.prices(["laptop"])).get("laptop")?.priceMinor).toBe(88888n);

    // An order at the old price now fails validation.
    const orderId = randomUUID();
    await saga.handle(recordsOf(orderId).created);
    const [failed] = tx.sent.filter((s) => s.topic === `${config.topicPrefix}orders.failed`).map((s) => decodeRecord(s.record, [OrderFailedSchema]).message);
    expect(failed?.reason).toBe(FailureReason.VALIDATION);
    expect(failed?.detail).toMatch(/laptop costs 88888/);
    await r.redis.hset(key, "price_minor", "99999");
    await r.redis.incr(catalogVersionKey(r.keys));
    await saga.catalog.check();
  });

  it("reads a price again once it is older than the longest age, even without a version bump", async () => {
    const saga = orchestrator(transaction(), { SAGA_CATALOG_MAX_AGE_MS: "1000" });
    await saga.catalog.prices(["mouse"]);
    await r.redis.hset(r.keys("product", "mouse"), "price_minor", "2600");
    expect((await saga.catalog.prices(["mouse"])).get("mouse")?.priceMinor).toBe(2500n);
    clock += 1000;
    expect((await saga.catalog.prices(["mouse"])).get("mouse")?.priceMinor).toBe(2600n);
    await r.redis.hset(r.keys("product", "mouse"), "price_minor", "2500");
  });
});
