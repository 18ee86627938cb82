import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FailureReason } from "../../../gen/orderflow/v1/common_pb.ts";
import { OrderCompletedSchema, OrderCreatedSchema, OrderFailedSchema } from "../../../gen/orderflow/v1/events_pb.ts";
import type { DecodedRecord } from "../../../lib/codec/codec.ts";
import { OrderStats } from "./stats.ts";

const T0 = 1_700_000_000_000;

function record<Desc extends DescMessage>(schema: Desc, orderId: string, atMs: number, init: MessageInitShape<Desc> = {} as MessageInitShape<Desc>): DecodedRecord {
  return {
    envelope: { eventId: `e-${orderId}-${atMs}`, eventType: schema.typeName, contentType: "application/x-protobuf", schemaVersion: "1", orderId, producer: "test", occurredAt: new Date(atMs) },
    schema,
    message: create(schema, init),
  };
}

describe("order stats", () => {
  it("measures accepted → terminal latency from the events' own times", () => {
    const stats = new OrderStats(T0);
    stats.observe("orders.created", record(OrderCreatedSchema, "a", T0), T0 + 5_000);
    stats.observe("orders.created", record(OrderCreatedSchema, "b", T0 + 100), T0 + 5_000);
    expect(stats.pending).toBe(2);
    stats.observe("orders.completed", record(OrderCompletedSchema, "a", T0 + 250), T0 + 5_000);
    stats.observe("orders.failed", record(OrderFailedSchema, "b", T0 + 1_100, { reason: FailureReason.PAYMENT }), T0 + 5_000);
    expect(stats.pending).toBe(0);
    const latency = stats.latency(T0 + 5_000);
    expect(latency.count).toBe(2);
    expect(latency.p50).toBe(250);
    expect(latency.max).toBeGreaterThanOrEqual(999);
    expect(latency.max).toBeLessThanOrEqual(1001);
    expect(stats.totals()).toEqual({ created: 2, completed: 1, failed: 1, cancelled: 0, failedByReason: { PAYMENT: 1 } });
    const series = stats.throughput(T0 + 5_000);
    expect(series.reduce((sum, s) => sum + s.created, 0)).toBe(2);
    expect(series.find((s) => s.second === Math.floor((T0 + 1_100) / 1000))?.failed).toBe(1);
  });

  it("measures a redelivered terminal event once", () => {
    const stats = new OrderStats(T0);
    stats.observe("orders.created", record(OrderCreatedSchema, "a", T0), T0);
    stats.observe("orders.completed", record(OrderCompletedSchema, "a", T0 + 10), T0);
    stats.observe("orders.completed", record(OrderCompletedSchema, "a", T0 + 10), T0);
    expect(stats.latency(T0).count).toBe(1);
  });

  it("charts but does not total events from before the start", () => {
    const stats = new OrderStats(T0);
    stats.observe("orders.created", record(OrderCreatedSchema, "old", T0 - 2_000), T0);
    expect(stats.totals().created).toBe(0);
    expect(stats.throughput(T0).reduce((sum, s) => sum + s.created, 0)).toBe(1);
  });

  it("forgets the oldest accepted orders beyond the limit", () => {
    const stats = new OrderStats(T0, 3);
    for (const id of ["a", "b", "c", "d"]) stats.observe("orders.created", record(OrderCreatedSchema, id, T0), T0);
    expect(stats.pending).toBe(3);
    stats.observe("orders.completed", record(OrderCompletedSchema, "a", T0 + 10), T0);
    expect(stats.latency(T0).count).toBe(0);
    stats.observe("orders.completed", record(OrderCompletedSchema, "d", T0 + 10), T0);
    expect(stats.latency(T0).count).toBe(1);
  });

  it("ignores topics that are not order outcomes", () => {
    const stats = new OrderStats(T0);
    stats.observe("payments.completed", record(OrderCreatedSchema, "a", T0), T0);
    expect(stats.totals().created).toBe(0);
    expect(stats.pending).toBe(0);
  });
});
