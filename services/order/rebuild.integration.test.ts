/**
 * Rebuilding the order read model on the real broker and Redis, while the model is in use: an
 * order stays readable throughout (no 404 from a read model being rebuilt); an order whose events
 * the log no longer has (older than retention — here: written to the read model only) survives
 * with its view and history, and one whose log has only its later events keeps its earlier ones;
 * every event the live projection applies while the rebuild runs is in the model after the swap;
 * a second rebuild started while one runs is refused; every key of the new generation expires,
 * and the old generation is gone; a rebuild that stopped half-way blocks others only until its
 * lease ends, can then neither write nor swap, and what it wrote is cleared.
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCompletedSchema, OrderCreatedSchema, OrderValidatedSchema, PaymentRefundedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { createTopics, openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { generationKeys, liveGeneration } from "./generations.ts";
import { OrderProjection, type ProjectedEvent, rebuildTopics } from "./projection.ts";
import { rebuildProjection } from "./rebuild.ts";

let t: TestKafka;
let publisher: Publisher;
const opened: TestRedis[] = [];

/** The read model's lifetime here. */
const lifetimeMs = 60 * 60_000;

beforeAll(async () => {
  t = await openTestKafka("rebuild-test");
  await createTopics(t.admin, rebuildTopics.map((base) => t.topic(base)));
  publisher = await createPublisher(t.kafka, t.config);
}, 60_000);

afterAll(async () => {
  await publisher?.disconnect();
  for (const r of opened) await r.close();
  await t?.close();
});

/** A read model of its own (its own key prefix) over the file's log. */
async function readModel() {
  const r = await openTestRedis();
  opened.push(r);
  const projection = new OrderProjection(r.redis, r.keys, {}, lifetimeMs);
  const rebuild = () => rebuildProjection({ admin: t.admin, config: t.config, projection });
  return { r, projection, rebuild };
}

/** An event as the live projection applies it, at `occurredAtMs` after the epoch of these tests. */
function event<Desc extends DescMessage>(schema: Desc, orderId: string, occurredAtMs: number, init: MessageInitShape<Desc> = sampleOf(schema, orderId)): ProjectedEvent {
  return {
    envelope: { eventId: randomUUID(), eventType: schema.typeName, orderId, occurredAt: new Date(Date.UTC(2026, 0, 1) + occurredAtMs) },
    message: create(schema, init),
  };
}

/**
 * An order placed, validated and completed long ago: its events are in the read model, no longer
 * in the log (retention removed them).
 */
async function orderOlderThanRetention(projection: OrderProjection): Promise<string> {
  const orderId = randomUUID();
  await projection.apply("orders.created", event(OrderCreatedSchema, orderId, 0));
  await projection.apply("orders.validated", event(OrderValidatedSchema, orderId, 100));
  await projection.apply("orders.completed", event(OrderCompletedSchema, orderId, 200));
  return orderId;
}

/** An order whose events are in the log. */
async function orderInTheLog(): Promise<string> {
  const orderId = randomUUID();
  await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
  await publisher.publish("orders.validated", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
  return orderId;
}

/** Reads `orderIds` through the projection's readers until `done` settles; returns each missing read. */
async function pollWhile(projection: OrderProjection, orderIds: readonly string[], done: Promise<unknown>): Promise<{ reads: number; missing: string[] }> {
  let settled = false;
  void done.finally(() => (settled = true)).catch(() => undefined);
  const missing: string[] = [];
  let reads = 0;
  while (!settled) {
    const listed = await projection.ids(undefined, 0, 1000);
    for (const orderId of orderIds) {
      reads += 1;
      if ((await projection.view(orderId)) === undefined) missing.push(`${orderId}: no view`);
      if ((await projection.history(orderId)).length === 0) missing.push(`${orderId}: no history`);
      if (!listed.includes(orderId)) missing.push(`${orderId}: not listed`);
    }
  }
  return { reads, missing };
}

describe("rebuilding the order read model", () => {
  it("keeps every order readable, by id, history and listing, while it runs", async () => {
    const { projection, rebuild } = await readModel();
    const inLog = await orderInTheLog();
    await rebuild();
    const old = await orderOlderThanRetention(projection);

    const running = rebuild();
    const { reads, missing } = await pollWhile(projection, [inLog, old], running);
    await running;
    expect(reads).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    expect((await projection.view(inLog))?.["status"]).toBe(String(OrderStatus.VALIDATED));
    expect((await projection.view(old))?.["status"]).toBe(String(OrderStatus.COMPLETED));
  });

  it("never loses an order older than the log's retention, nor the earlier events of one whose log kept only the later", async () => {
    const { r, projection, rebuild } = await readModel();
    // The log kept this order's completion, not its creation.
    const partly = randomUUID();
    await publisher.publish("orders.completed", OrderCompletedSchema, sampleOf(OrderCompletedSchema, partly), { orderId: partly });
    await rebuild();
    await projection.apply("orders.created", event(OrderCreatedSchema, partly, 0));
    const old = await orderOlderThanRetention(projection);
    await projection.apply("payments.refunded", event(PaymentRefundedSchema, old, 300));
    const before = { view: await projection.view(old), history: await projection.history(old), listed: await projection.ids("c-1", 0, 1000) };
    const partlyBefore = await projection.view(partly);
    expect(before.view?.["refunded"]).toBe("1");

    const result = await rebuild();
    expect(await projection.view(old)).toEqual(before.view);
    expect(await projection.history(old)).toEqual(before.history);
    expect(await projection.ids("c-1", 0, 1000)).toEqual(expect.arrayContaining([old]));
    const partlyAfter = await projection.view(partly);
    expect(partlyAfter?.["status"]).toBe(String(OrderStatus.COMPLETED));
    expect(partlyAfter?.["created_at"]).toBe(partlyBefore?.["created_at"]);
    expect(partlyAfter?.["items"]).toBe(partlyBefore?.["items"]);
    expect((await projection.history(partly)).map((entry) => entry.topic).sort()).toEqual(["orders.completed", "orders.created"]);
    expect(result.carriedOver).toBeGreaterThanOrEqual(2);

    // Every key of the read model (now a new generation) expires within the lifetime; the old one is gone.
    const generation = await liveGeneration(r.redis, r.keys);
    expect(generation).toBeGreaterThan(0);
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, found] = await r.redis.scan(cursor, "MATCH", `${r.prefix}:*`, "COUNT", 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== "0");
    const current = generationKeys(r.keys, generation)("");
    const pointer = r.keys("readmodel", "live");
    expect(keys.filter((key) => key !== pointer && !key.startsWith(current))).toEqual([]);
    expect(keys).toContain(generationKeys(r.keys, generation)("order", old));
    for (const key of keys) {
      const ttl = await r.redis.pttl(key);
      expect(ttl > 0 && ttl <= lifetimeMs, `${key} expires in ${ttl} ms`).toBe(true);
    }
  });

  it("keeps every event the live projection applied while it ran", async () => {
    const { projection, rebuild } = await readModel();
    const inLog = await orderInTheLog();
    await rebuild();
    const old = await orderOlderThanRetention(projection);

    const running = rebuild();
    let settled = false;
    void running.finally(() => (settled = true)).catch(() => undefined);
    const applied = new Map<string, string[]>([[inLog, []], [old, []]]);
    let at = 1000;
    while (!settled) {
      for (const [orderId, eventIds] of applied) {
        const refund = event(PaymentRefundedSchema, orderId, (at += 1));
        await projection.apply("payments.refunded", refund);
        eventIds.push(refund.envelope.eventId);
      }
    }
    await running;
    for (const [orderId, eventIds] of applied) {
      expect(eventIds.length).toBeGreaterThan(0);
      const history = new Set((await projection.history(orderId)).map((entry) => entry.event_id));
      expect(eventIds.filter((eventId) => !history.has(eventId)), `events of ${orderId} lost`).toEqual([]);
      expect((await projection.view(orderId))?.["items"], `${orderId} keeps its lines`).toBeTruthy();
    }
    expect((await projection.view(old))?.["status"]).toBe(String(OrderStatus.COMPLETED));
  });

  it("refuses a second rebuild while one runs, and leaves the model whole", async () => {
    const { projection, rebuild } = await readModel();
    const inLog = await orderInTheLog();
    await rebuild();
    const old = await orderOlderThanRetention(projection);

    const outcomes = await Promise.allSettled([rebuild(), rebuild()]);
    expect(outcomes.filter((outcome) => outcome.status === "fulfilled")).toHaveLength(1);
    const refused = outcomes.find((outcome) => outcome.status === "rejected");
    expect(String(refused?.reason)).toMatch(/a rebuild of the order read model is already running/);
    for (const orderId of [inLog, old]) expect(await projection.view(orderId)).toBeDefined();
    // The claim ended with the rebuild that held it: the next one runs.
    await expect(rebuild()).resolves.toMatchObject({ carriedOver: 1 });
  });
});

describe("a rebuild that stopped half-way", () => {
  it("blocks no other rebuild past its lease, can no longer write or swap, and leaves nothing in the model", async () => {
    const { projection, rebuild } = await readModel();
    const { generations } = projection;
    const inLog = await orderInTheLog();
    await rebuild();
    // A rebuild that crashed after it had opened its generation and written an order into it.
    const crashed = await generations.claim(200);
    await generations.openToLiveWrites(crashed);
    const stray = randomUUID();
    await projection.apply("orders.created", event(OrderCreatedSchema, stray, 0), crashed);
    await expect(rebuild()).rejects.toThrow(/already running/);

    await waitFor(async () => {
      const result = await rebuild().catch((err: unknown) => err);
      return !(result instanceof Error);
    }, { what: "a rebuild to run once the crashed one's lease is over" });
    await expect(generations.swap(crashed)).rejects.toThrow(/no longer holds the read model/);
    await expect(projection.apply("orders.created", event(OrderCreatedSchema, randomUUID(), 0), crashed)).rejects.toThrow(/no longer holds the read model/);
    expect(await projection.view(stray)).toBeUndefined();
    expect((await projection.view(inLog))?.["status"]).toBe(String(OrderStatus.VALIDATED));
  });
});
