/** The projection's rules per event: which status it moves to, what it states, what it only fills in, how it reads. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCreatedSchema, OrderFailedSchema, OrderValidatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { sagaTopics } from "../../infra/topics.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { changeOf, liveTopics, rebuildTopics } from "./projection.ts";

const schemaOf = (topic: string) => sagaTopics.find((t) => t.name === topic)!.valueTypes[0];
const sampleChange = (topic: string, patch: Record<string, unknown> = {}) => changeOf(topic, create(schemaOf(topic), { ...sampleOf(schemaOf(topic)), ...patch }));

describe("projection rules", () => {
  it("reads the order lifecycle live, and orders.created besides in a rebuild", () => {
    expect([...liveTopics].sort()).toEqual(["orders.cancelled", "orders.completed", "orders.failed", "orders.validated", "payments.refunded"]);
    expect([...rebuildTopics].sort()).toEqual([...liveTopics, "orders.created"].sort());
    expect(() => changeOf("notifications.sent", {})).toThrow(/does not read/);
    expect(() => changeOf("inventory.reserved", {})).toThrow(/does not read/);
  });

  it.each(rebuildTopics.map((topic) => [topic]))("describes %s for the history", (topic) => {
    expect(sampleChange(topic).summary.length).toBeGreaterThan(5);
  });

  it("moves the status for every lifecycle event, and marks a refund without moving it", () => {
    expect(sampleChange("orders.created").status).toBe(OrderStatus.PENDING);
    expect(sampleChange("orders.validated").status).toBe(OrderStatus.VALIDATED);
    expect(sampleChange("orders.completed").status).toBe(OrderStatus.COMPLETED);
    expect(sampleChange("orders.failed").status).toBe(OrderStatus.FAILED);
    expect(sampleChange("orders.cancelled").status).toBe(OrderStatus.CANCELLED);
    const refunded = sampleChange("payments.refunded");
    expect(refunded.status).toBeUndefined();
    expect(refunded.fields).toEqual({ refunded: "1" });
  });

  it("states the order's data on orders.created and only fills it in from orders.validated, with the same values", () => {
    const createdAt = new Date(Date.UTC(2026, 0, 1, 12));
    const orderId = "0199a1b2-0000-7000-8000-000000000001";
    const created = changeOf("orders.created", create(OrderCreatedSchema, { ...sampleOf(OrderCreatedSchema, orderId), createdAt: timestampFromDate(createdAt) }));
    const validated = changeOf("orders.validated", create(OrderValidatedSchema, { ...sampleOf(OrderValidatedSchema, orderId), createdAt: timestampFromDate(createdAt), cardLast4: "4242" }));
    expect(created.fill).toEqual({});
    expect(created.occurredAt).toEqual(createdAt);
    expect(created.fields).toMatchObject({ order_id: orderId, customer_id: "c-1", total: "1049.99", card_last4: "4242", created_at: createdAt.toISOString() });
    expect(validated.fields).toEqual({ order_id: orderId, customer_id: "c-1" });
    expect(created.fields).toEqual({ ...validated.fields, ...validated.fill });
    expect(validated.createdAt).toEqual(createdAt);
    expect(validated.occurredAt).toBeUndefined();
  });

  it("fills in no created_at from a record of an earlier version that has none", () => {
    const change = changeOf("orders.validated", create(OrderValidatedSchema, { ...sampleOf(OrderValidatedSchema), createdAt: undefined }));
    expect(change.fill).not.toHaveProperty("created_at");
    expect(change.createdAt).toBeUndefined();
  });

  it("tells the outcome's details: payment id, failure reason and detail, a refund under way", () => {
    expect(sampleChange("orders.completed").summary).toBe("order completed: paid 1049.99 USD (payment pay-1)");
    expect(sampleChange("orders.completed").fields).toMatchObject({ payment_id: "pay-1" });
    const failed = changeOf("orders.failed", create(OrderFailedSchema, { ...sampleOf(OrderFailedSchema), reason: FailureReason.INVENTORY, detail: "laptop: 3 wanted, 1 available", refunded: true }));
    expect(failed.summary).toBe("order failed (INVENTORY): laptop: 3 wanted, 1 available; the charge is being refunded");
    expect(failed.fields).toMatchObject({ failure_reason: String(FailureReason.INVENTORY), failure_detail: "laptop: 3 wanted, 1 available" });
    expect(sampleChange("orders.cancelled").summary).toBe("order cancelled: customer; the charge is being refunded");
    expect(sampleChange("orders.cancelled", { refunded: false, reason: "" }).summary).toBe("order cancelled: no reason given");
  });
});
