/**
 * The projection's end-to-end latency on the real Redis: observed once per order, from its
 * created_at to the occurredAt of its first terminal event, whichever of the two is projected
 * first; never for a replayed event or a later terminal event.
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCancelledSchema, OrderCompletedSchema, OrderCreatedSchema, OrderFailedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import type { DecodedRecord } from "../../lib/codec/codec.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { OrderProjection } from "./projection.ts";

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

const created = (orderId: string) => record(OrderCreatedSchema, { ...sampleOf(OrderCreatedSchema, orderId), createdAt: timestampFromDate(at(0)) }, orderId, 0);

function observed() {
  const seen: { outcome: string; seconds: number }[] = [];
  const projection = new OrderProjection(r.redis, r.keys, { e2eSeconds: { observe: (labels, seconds) => void seen.push({ outcome: labels.outcome, seconds }) } });
  return { seen, projection };
}

describe("end-to-end latency in the projection", () => {
  it("is observed at the first terminal event, and not for a replay or a later terminal event", async () => {
    const { seen, projection } = observed();
    const orderId = randomUUID();
    await projection.apply("orders.created", created(orderId));
    expect(seen).toEqual([]);
    const failed = record(OrderFailedSchema, { ...sampleOf(OrderFailedSchema, orderId) }, orderId, 1500);
    expect(await projection.apply("orders.failed", failed)).toBe(true);
    expect(seen).toEqual([{ outcome: "failed", seconds: 1.5 }]);
    expect(await projection.apply("orders.failed", failed)).toBe(false);
    await projection.apply("orders.cancelled", record(OrderCancelledSchema, { ...sampleOf(OrderCancelledSchema, orderId) }, orderId, 9000));
    expect(seen).toEqual([{ outcome: "failed", seconds: 1.5 }]);
  });

  it("is observed when orders.created is projected after the terminal event", async () => {
    const { seen, projection } = observed();
    const orderId = randomUUID();
    await projection.apply("orders.completed", record(OrderCompletedSchema, { ...sampleOf(OrderCompletedSchema, orderId) }, orderId, 250));
    expect(seen).toEqual([]);
    await projection.apply("orders.created", created(orderId));
    expect(seen).toEqual([{ outcome: "completed", seconds: 0.25 }]);
    expect((await projection.view(orderId))?.["status"]).toBe("3");
  });

  it("observes nothing without an observer (a rebuild), and projects the same", async () => {
    const orderId = randomUUID();
    const plain = new OrderProjection(r.redis, r.keys);
    expect(await plain.apply("orders.created", created(orderId))).toBe(true);
    expect(await plain.apply("orders.completed", record(OrderCompletedSchema, { ...sampleOf(OrderCompletedSchema, orderId) }, orderId, 100))).toBe(true);
    expect((await plain.view(orderId))?.["terminal_at"]).toBe(at(100).toISOString());
  });
});
