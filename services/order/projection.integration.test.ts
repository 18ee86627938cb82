/**
 * The projection on the real Redis: the end-to-end latency observed once per order (from its
 * created_at to its first terminal event, whichever the view gets second; never for a replay or a
 * later terminal event); a usable view from lifecycle events alone when the accept-time write is
 * missing; the same view, history and listing whatever order the events arrive in; and the
 * model's lifetime (every key expires after the order's last change; the listing drops orders
 * placed longer ago than the lifetime).
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import {
  OrderCancelledSchema,
  OrderCompletedSchema,
  OrderCreatedSchema,
  OrderFailedSchema,
  OrderValidatedSchema,
  PaymentRefundedSchema,
} from "../../gen/orderflow/v1/events_pb.ts";
import type { DecodedRecord } from "../../lib/codec/codec.ts";
import type { Keys } from "../../lib/redis.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { OrderProjection, type ProjectionObservers } from "./projection.ts";

let r: TestRedis;
beforeAll(async () => {
  r = await openTestRedis();
});
afterAll(() => r?.close());

const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);

function record<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>, orderId: string, occurredAtMs: number, eventId = randomUUID()): DecodedRecord {
  return {
    envelope: { eventId, eventType: schema.typeName, contentType: "application/x-protobuf", schemaVersion: "1", orderId, producer: "test", occurredAt: at(occurredAtMs) },
    schema,
    message: create(schema, init),
  };
}

/** orders.created as published: its envelope time a little after its created_at (0 ms). */
const created = (orderId: string) => record(OrderCreatedSchema, { ...sampleOf(OrderCreatedSchema, orderId), createdAt: timestampFromDate(at(0)) }, orderId, 3);
const validated = (orderId: string, init: { createdAt?: Timestamp; cardLast4?: string } = { createdAt: timestampFromDate(at(0)), cardLast4: "4242" }) =>
  record(OrderValidatedSchema, { ...sampleOf(OrderValidatedSchema, orderId), ...init }, orderId, 100);
const completed = (orderId: string, ms = 250) => record(OrderCompletedSchema, sampleOf(OrderCompletedSchema, orderId), orderId, ms);

/** The read model's lifetime in these tests; their clock stands a second after the events' time 0. */
const lifetimeMs = 60 * 60_000;

/** A projection over its own key space under the test's prefix. */
function projectionIn(space: string, observers: ProjectionObservers = {}, now = () => at(1000).getTime()) {
  const keys: Keys = (...parts) => r.keys(space, ...parts);
  return { projection: new OrderProjection(r.redis, keys, observers, lifetimeMs, now), keys };
}

function observed() {
  const seen: { outcome: string; seconds: number }[] = [];
  const { projection } = projectionIn(randomUUID(), { e2eSeconds: { observe: (labels, seconds) => void seen.push({ outcome: labels.outcome, seconds }) } });
  return { seen, projection };
}

describe("end-to-end latency in the projection", () => {
  it("is observed at the first terminal event, and not for a replay or a later terminal event", async () => {
    const { seen, projection } = observed();
    const orderId = randomUUID();
    await projection.apply("orders.created", created(orderId));
    await projection.apply("orders.validated", validated(orderId));
    expect(seen).toEqual([]);
    const failed = record(OrderFailedSchema, sampleOf(OrderFailedSchema, orderId), orderId, 1500);
    expect(await projection.apply("orders.failed", failed)).toBe(true);
    expect(seen).toEqual([{ outcome: "failed", seconds: 1.5 }]);
    expect(await projection.apply("orders.failed", failed)).toBe(false);
    await projection.apply("orders.cancelled", record(OrderCancelledSchema, sampleOf(OrderCancelledSchema, orderId), orderId, 9000));
    expect(seen).toEqual([{ outcome: "failed", seconds: 1.5 }]);
  });

  it("is observed when orders.created is applied after the terminal event", async () => {
    const { seen, projection } = observed();
    const orderId = randomUUID();
    await projection.apply("orders.completed", completed(orderId));
    expect(seen).toEqual([]);
    const accepted = created(orderId);
    await projection.apply("orders.created", accepted);
    expect(seen).toEqual([{ outcome: "completed", seconds: 0.25 }]);
    expect(await projection.apply("orders.created", accepted)).toBe(false);
    await projection.apply("orders.validated", validated(orderId));
    expect(seen).toHaveLength(1);
  });

  it("is observed from the created_at a lifecycle event carries when the accept-time write is missing", async () => {
    const { seen, projection } = observed();
    const orderId = randomUUID();
    await projection.apply("orders.validated", validated(orderId));
    await projection.apply("orders.completed", completed(orderId, 400));
    expect(seen).toEqual([{ outcome: "completed", seconds: 0.4 }]);
    const lone = randomUUID();
    await projection.apply("orders.failed", record(OrderFailedSchema, { ...sampleOf(OrderFailedSchema, lone), reason: FailureReason.VALIDATION, createdAt: timestampFromDate(at(0)) }, lone, 50));
    expect(seen.at(-1)).toEqual({ outcome: "failed", seconds: 0.05 });
  });

  it("observes nothing without an observer (a rebuild), and projects the same", async () => {
    const orderId = randomUUID();
    const { projection } = projectionIn(randomUUID());
    expect(await projection.apply("orders.created", created(orderId))).toBe(true);
    expect(await projection.apply("orders.completed", completed(orderId, 100))).toBe(true);
    expect((await projection.view(orderId))?.["terminal_at"]).toBe(at(100).toISOString());
  });
});

describe("the view from the order lifecycle", () => {
  it("is whole from orders.validated alone, and the late accept-time write changes none of the order's data", async () => {
    const { projection, keys } = projectionIn(randomUUID());
    const orderId = randomUUID();
    await projection.apply("orders.validated", validated(orderId));
    const fromLifecycle = await projection.view(orderId);
    expect(fromLifecycle).toMatchObject({
      order_id: orderId,
      customer_id: "c-1",
      status: "2",
      currency: "USD",
      total: "1049.99",
      card_last4: "4242",
      created_at: at(0).toISOString(),
      items: JSON.stringify([{ product_id: "laptop", quantity: 1, price: "999.99" }, { product_id: "mouse", quantity: 2, price: "25.00" }]),
    });
    expect(await projection.ids("c-1", 0, 10)).toEqual([orderId]);
    expect(await r.redis.zscore(keys("orders"), orderId)).toBe(String(at(0).getTime()));
    await projection.apply("orders.created", created(orderId));
    const after = await projection.view(orderId);
    expect(after?.["version"]).toBe("2");
    expect({ ...after, version: "1" }).toEqual(fromLifecycle);
  });

  it("is usable from a lone orders.failed (a validation failure whose accept-time write failed)", async () => {
    const { projection } = projectionIn(randomUUID());
    const orderId = randomUUID();
    await projection.apply("orders.failed", record(OrderFailedSchema, { ...sampleOf(OrderFailedSchema, orderId), reason: FailureReason.VALIDATION, detail: "unknown product x", createdAt: timestampFromDate(at(0)) }, orderId, 20));
    expect(await projection.view(orderId)).toMatchObject({ order_id: orderId, customer_id: "c-1", status: "4", failure_reason: String(FailureReason.VALIDATION), failure_detail: "unknown product x", created_at: at(0).toISOString() });
    expect(await projection.ids(undefined, 0, 10)).toEqual([orderId]);
  });

  it("ends the same, with the same history and listing, whatever order its events arrive in", async () => {
    const orderId = randomUUID();
    const events: [string, DecodedRecord][] = [
      ["orders.created", created(orderId)],
      ["orders.validated", validated(orderId)],
      ["orders.completed", completed(orderId)],
      ["orders.cancelled", record(OrderCancelledSchema, sampleOf(OrderCancelledSchema, orderId), orderId, 5000)],
      ["payments.refunded", record(PaymentRefundedSchema, sampleOf(PaymentRefundedSchema, orderId), orderId, 6000)],
    ];
    const results = [];
    for (const arrival of [events, [...events].reverse(), [2, 4, 0, 3, 1].map((i) => events[i])]) {
      const { projection, keys } = projectionIn(randomUUID());
      for (const [topic, event] of arrival) expect(await projection.apply(topic, event)).toBe(true);
      results.push({ view: await projection.view(orderId), history: await projection.history(orderId), listedAt: await r.redis.zscore(keys("orders", "customer", "c-1"), orderId) });
    }
    expect(results[0]?.view).toMatchObject({ status: "5", refunded: "1", payment_id: "pay-1", card_last4: "4242", version: "5" });
    expect(results[0]?.history.map((e) => e.topic)).toEqual(["orders.created", "orders.validated", "orders.completed", "orders.cancelled", "payments.refunded"]);
    expect(results[0]?.history[0]?.occurred_at).toBe(at(0).toISOString());
    expect(results[0]?.listedAt).toBe(String(at(0).getTime()));
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });
});

describe("lifetime of the read model", () => {
  it("expires an order's view, history and seen ids a lifetime after its last change", async () => {
    const orderId = randomUUID();
    const { projection, keys } = projectionIn(randomUUID());
    await projection.apply("orders.created", created(orderId));
    const orderKeys = [keys("order", orderId), keys("order", orderId, "events"), keys("order", orderId, "seen")];
    for (const key of orderKeys) await r.redis.pexpire(key, 1000);
    await projection.apply("orders.completed", completed(orderId));
    for (const key of [...orderKeys, keys("orders"), keys("orders", "customer", "c-1")]) {
      const ttl = await r.redis.pttl(key);
      expect(ttl).toBeGreaterThan(lifetimeMs - 60_000);
      expect(ttl).toBeLessThanOrEqual(lifetimeMs);
    }
  });

  it("drops from the listing the orders placed longer ago than the lifetime, as it writes", async () => {
    let nowMs = at(1000).getTime();
    const { projection, keys } = projectionIn(randomUUID(), {}, () => nowMs);
    const [old, recent] = [randomUUID(), randomUUID()];
    await projection.apply("orders.created", created(old));
    nowMs = at(lifetimeMs + 1).getTime();
    await projection.apply("orders.validated", validated(recent, { createdAt: timestampFromDate(at(lifetimeMs)), cardLast4: "4242" }));
    for (const index of [keys("orders"), keys("orders", "customer", "c-1")]) {
      expect(await r.redis.zrange(index, 0, -1)).toEqual([recent]);
    }
  });
});
