/**
 * The orchestrator in-process against the real broker and Redis, driven by records the other
 * services would send: the happy path, a duplicate delivery, a saga another writer changed behind
 * the in-memory copy, a timeout fired by its timer, a compensation that is never confirmed being
 * parked, an outbox a crash left behind, and a cancel that arrives before its order. A saga's record is kept while it is not settled and
 * expires REDIS_DEDUP_TTL_MS after its last write once it is.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import {
  InventoryAction,
  InventoryReservedSchema,
  OrderCancelRequestedSchema,
  OrderCreatedSchema,
  OrderValidatedSchema,
  PaymentAction,
  PaymentCompletedSchema,
  type InventoryActionRequested,
  type OrderCancelled,
  type OrderFailed,
  type PaymentRequested,
} from "../../gen/orderflow/v1/events_pb.ts";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { startTestService, type TestService } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { longestRedeliveryMs } from "../../lib/lifetimes.ts";
import { buildOrchestrator } from "./service.ts";
import { entryCreatedMs, toOutbox } from "./outbox.ts";
import { SagaStore } from "./store.ts";

let ctx: TestService;

beforeAll(async () => {
  ctx = await startTestService("orchestrator", buildOrchestrator, {
    env: { SAGA_STEP_TIMEOUT_MS: "3000", SAGA_COMPENSATION_RETRY_MS: "200", SAGA_COMPENSATION_MAX_ATTEMPTS: "2", SAGA_TICK_MS: "50" },
    watched: ["orders.validated", "payments.requested", "inventory.requested", "orders.completed", "orders.failed", "orders.cancelled", "notifications.email", "orders.audit"],
    prepare: async (r) => {
      for (const [sku, price] of [["laptop", "99999"], ["mouse", "2500"]] as const) {
        await r.redis.hset(r.keys("product", sku), { name: sku, currency: "USD", price_minor: price });
      }
    },
  });
});

afterAll(() => ctx?.close());

const place = async (orderId: string) => {
  await ctx.publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
};

describe("orchestrator service", () => {
  it("takes an order from created to completed, and ignores a duplicate answer", async () => {
    const orderId = randomUUID();
    await place(orderId);
    await ctx.watch.next(orderId, "orders.validated");
    const charge = (await ctx.watch.next(orderId, "payments.requested")).message as unknown as PaymentRequested;
    expect(charge.action).toBe(PaymentAction.CHARGE);
    expect(charge.amount?.amountMinor).toBe(104999n);

    const payment = sampleOf(PaymentCompletedSchema, orderId);
    await ctx.publisher.publish("payments.completed", PaymentCompletedSchema, payment, { orderId });
    await ctx.publisher.publish("payments.completed", PaymentCompletedSchema, payment, { orderId });
    await ctx.publisher.publish("inventory.reserved", InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId), { orderId });
    await ctx.watch.next(orderId, "orders.completed");
    await ctx.watch.next(orderId, "notifications.email");

    const store = new SagaStore(ctx.service.runtime.redis, ctx.r.keys, ctx.service.runtime.config.redisLifetimes.dedupMs);
    await waitFor(async () => (await store.outbox(orderId)).length === 0, { what: "the outbox to empty after the commit" });
    expect((await store.load(orderId)).saga?.state).toMatchObject({ status: OrderStatus.COMPLETED, stock: "committed" });
    expect(await ctx.service.runtime.redis.zscore(ctx.r.keys("saga-outbox-since"), orderId)).toBeNull();
    // Settled: it expires, but only after every copy of every record about it can no longer arrive.
    const ttl = await ctx.service.runtime.redis.pttl(ctx.r.keys("saga", orderId));
    expect(ttl).toBeGreaterThan(longestRedeliveryMs());
    expect(ttl).toBeLessThanOrEqual(ctx.service.runtime.config.redisLifetimes.dedupMs);
    expect(ctx.watch.of(orderId, "orders.completed")).toHaveLength(1);
    expect(ctx.watch.of(orderId, "payments.requested")).toHaveLength(1);
    // The inventory service commits on orders.completed; status changes are not audited.
    expect(ctx.watch.of(orderId, "inventory.requested")).toEqual([]);
    expect(ctx.watch.of(orderId, "orders.audit")).toEqual([]);
  });

  it("decides on the stored saga when another writer changed it behind the copy in memory", async () => {
    const orderId = randomUUID();
    await place(orderId);
    await ctx.watch.next(orderId, "payments.requested");
    // Not settled: kept, however long it takes.
    expect(await ctx.service.runtime.redis.pttl(ctx.r.keys("saga", orderId))).toBe(-1);
    // Another instance took the charge answer: the stored saga moves on, this process's copy does not.
    const store = new SagaStore(ctx.service.runtime.redis, ctx.r.keys, ctx.service.runtime.config.redisLifetimes.dedupMs);
    const before = await store.load(orderId);
    await store.update(orderId, (saga) => (saga === undefined ? undefined : { ...saga, state: { ...saga.state, payment: "charged", paymentId: "pay-elsewhere" } }));
    expect((await store.load(orderId)).version).not.toBe(before.version);

    await ctx.publisher.publish("inventory.reserved", InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId), { orderId });
    const completed = await ctx.watch.next(orderId, "orders.completed");
    expect((completed.message as unknown as { paymentId: string }).paymentId).toBe("pay-elsewhere");
  });

  it("fails an order whose steps do not answer in time, by its own timer", async () => {
    const orderId = randomUUID();
    await place(orderId);
    await ctx.publisher.publish("inventory.reserved", InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId), { orderId });
    const failed = (await ctx.watch.next(orderId, "orders.failed", 20_000)).message as unknown as OrderFailed;
    expect(failed.reason).toBe(FailureReason.TIMEOUT);
    const release = await waitFor(() => ctx.watch.of(orderId, "inventory.requested")[0], { what: "the release" });
    expect((release.message as unknown as InventoryActionRequested).action).toBe(InventoryAction.RELEASE);
  });

  it("re-sends an unconfirmed compensation and parks it after the last attempt", async () => {
    const orderId = randomUUID();
    await place(orderId);
    await ctx.publisher.publish("inventory.reserved", InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId), { orderId });
    await ctx.watch.next(orderId, "orders.failed", 20_000);
    const parked = await waitFor(async () => {
      const all = await ctx.service.runtime.redis.hvals(ctx.r.keys("parked"));
      return all.map((raw) => JSON.parse(raw) as { orderId: string; action: string; attempts: number }).find((p) => p.orderId === orderId);
    }, { what: "a parked release" });
    expect(parked).toMatchObject({ action: "RELEASE", attempts: 2 });
    // FAILED but waiting for an operator: the saga is kept until the compensation is resolved.
    expect(await ctx.service.runtime.redis.pttl(ctx.r.keys("saga", orderId))).toBe(-1);
    // The second release went out before the park was written, but the test's reader may not have
    // read it yet (under load it lagged: the cause of this test's occasional failure). Once it has,
    // there is no third: a parked compensation is not sent again.
    await waitFor(() => ctx.watch.of(orderId, "inventory.requested").length >= 2, { what: "the test's reader to see both releases" });
    expect(ctx.watch.of(orderId, "inventory.requested").length).toBe(2);
  });

  it("publishes an outbox a crash left behind once it is old enough, and clears it from the index", async () => {
    const orderId = randomUUID();
    await place(orderId);
    await ctx.watch.next(orderId, "payments.requested");
    const { redis } = ctx.service.runtime;
    const store = new SagaStore(redis, ctx.r.keys, ctx.service.runtime.config.redisLifetimes.dedupMs);
    // An effect decided ten seconds ago whose handler died before carrying it out: its UUIDv7 id says when.
    const { version, saga } = await store.load(orderId);
    if (saga === undefined) throw new Error("no saga stored");
    const [fresh] = toOutbox([{ kind: "publish", topic: "orders.validated", key: orderId, schema: OrderValidatedSchema, message: sampleOf(OrderValidatedSchema, orderId) }], { encoding: "binary", state: saga.state });
    if (fresh === undefined) throw new Error("no outbox entry");
    const decidedHex = (Date.now() - 10_000).toString(16).padStart(12, "0");
    const leftBehind = { ...fresh, id: `${decidedHex.slice(0, 8)}-${decidedHex.slice(8)}${fresh.id.slice(13)}` };
    expect(entryCreatedMs(leftBehind)).toBeLessThan(Date.now() - 9_000);
    expect((await store.write(orderId, version, saga, [leftBehind])).written).toBe(true);

    const republished = await waitFor(() => ctx.watch.of(orderId, "orders.validated").find((r) => r.envelope.eventId === leftBehind.id), { what: "the left-behind effect" });
    expect(republished.envelope.orderId).toBe(orderId);
    // Sent as stored: the same bytes, and the decision time as occurred-at.
    expect(republished.envelope.occurredAt.getTime()).toBe(entryCreatedMs(leftBehind));
    await waitFor(async () => (await store.outbox(orderId)).length === 0, { what: "the outbox to empty" });
    expect(await redis.zscore(ctx.r.keys("saga-outbox-since"), orderId)).toBeNull();
  });

  it("keeps a cancel that arrives before its order, and the order then ends CANCELLED without being charged or reserved", async () => {
    const orderId = randomUUID();
    const { redis } = ctx.service.runtime;
    const store = new SagaStore(redis, ctx.r.keys, ctx.service.runtime.config.redisLifetimes.dedupMs);
    await ctx.publisher.publish("orders.cancel.requested", OrderCancelRequestedSchema, { ...sampleOf(OrderCancelRequestedSchema, orderId), reason: "before it arrived" }, { orderId });
    const kept = await waitFor(async () => (await store.load(orderId)).earlyCancel, { what: "the cancel to be kept" });
    expect(kept.cancel.reason).toBe("before it arrived");
    // Kept with a lifetime, like a settled saga: an order that never arrives leaves nothing forever.
    const ttl = await redis.pttl(ctx.r.keys("saga", orderId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(ctx.service.runtime.config.redisLifetimes.dedupMs);

    await place(orderId);
    const cancelled = (await ctx.watch.next(orderId, "orders.cancelled")).message as unknown as OrderCancelled;
    expect(cancelled).toMatchObject({ reason: "before it arrived", refunded: false });
    await ctx.watch.next(orderId, "notifications.email");
    await waitFor(async () => (await store.outbox(orderId)).length === 0, { what: "the outbox to empty after the commit" });
    const after = await store.load(orderId);
    expect(after.saga?.state).toMatchObject({ status: OrderStatus.CANCELLED, payment: "none", stock: "none" });
    expect(await redis.hget(ctx.r.keys("saga", orderId), "cancel")).toBeNull();
    // Nothing was validated, charged or reserved, and no second outcome follows.
    for (const topic of ["orders.validated", "payments.requested", "inventory.requested", "orders.completed", "orders.failed"]) expect(ctx.watch.of(orderId, topic)).toEqual([]);
    expect(ctx.watch.of(orderId, "orders.cancelled")).toHaveLength(1);
  });
});
