import { describe, expect, it } from "vitest";
import { FailureReason, OrderStatus, PaymentMethod } from "../../../gen/orderflow/v1/common_pb.ts";
import type { SagaState } from "../../orchestrator/saga.ts";
import { buildSnapshot, latestOrderOf, sagaViewOf, timelineOf, type StaleSection } from "./snapshot.ts";
import { OrderStats } from "./stats.ts";

const view = (fields: Record<string, string> = {}) => ({
  order_id: "0b7e6c1e-2f0a-4c1b-9a55-3b1f8e1d2c3a",
  customer_id: "c-1",
  currency: "USD",
  total: "1024.99",
  items: JSON.stringify([{ product_id: "laptop", quantity: 1, price: "999.99" }, { product_id: "mouse", quantity: 1, price: "25.00" }]),
  card_last4: "4242",
  created_at: "2026-01-01T10:00:00.000Z",
  updated_at: "2026-01-01T10:00:01.500Z",
  status: String(OrderStatus.COMPLETED),
  version: "7",
  ...fields,
});

const saga: SagaState = {
  orderId: "0b7e6c1e-2f0a-4c1b-9a55-3b1f8e1d2c3a",
  customerId: "c-1",
  customerEmail: "someone@example.com",
  currency: "USD",
  totalMinor: "102499",
  lines: [],
  instrument: { method: PaymentMethod.CARD, token: "tok_secret", cardLast4: "4242" },
  status: OrderStatus.FAILED,
  payment: "refund_requested",
  stock: "short",
  failure: { reason: FailureReason.INVENTORY, detail: "laptop short" },
  deadlineMs: Date.UTC(2026, 0, 1, 10, 0, 5),
  pending: { refund: { attempts: 2, dueMs: 0 } },
  parked: ["release"],
};

describe("snapshot parts", () => {
  it("renders a stored order view as a table row; a failure reason only on a failed order", () => {
    expect(latestOrderOf(view())).toEqual({
      orderId: "0b7e6c1e-2f0a-4c1b-9a55-3b1f8e1d2c3a",
      status: "COMPLETED",
      total: "1024.99",
      currency: "USD",
      updatedAt: "2026-01-01T10:00:01.500Z",
    });
    expect(latestOrderOf(view({ status: String(OrderStatus.FAILED), failure_reason: String(FailureReason.PAYMENT) }))).toMatchObject({ status: "FAILED", failureReason: "PAYMENT" });
    expect(latestOrderOf(view({ updated_at: "" })).updatedAt).toBe("");
  });

  it("shows the saga without customer data or payment token", () => {
    const shown = sagaViewOf(saga);
    expect(shown).toEqual({
      status: "FAILED",
      payment: "refund_requested",
      stock: "short",
      failure: { reason: "INVENTORY", detail: "laptop short" },
      deadline: "2026-01-01T10:00:05.000Z",
      pending: { refund: 2 },
      parked: ["release"],
    });
    expect(JSON.stringify(shown)).not.toMatch(/tok_secret|someone@/);
  });

  it("builds a timeline from view, history and saga", () => {
    const timeline = timelineOf(
      view(),
      [{ event_id: "e1", event_type: "orderflow.v1.OrderCreated", topic: "orders.created", occurred_at: "2026-01-01T10:00:00.000Z", summary: "order placed" }],
      undefined,
    );
    expect(timeline.order).toMatchObject({ status: "COMPLETED", createdAt: "2026-01-01T10:00:00.000Z", refunded: false, items: [{ productId: "laptop", quantity: 1, price: "999.99" }, { productId: "mouse", quantity: 1, price: "25.00" }] });
    expect(timeline.events).toEqual([{ eventId: "e1", eventType: "orderflow.v1.OrderCreated", topic: "orders.created", occurredAt: "2026-01-01T10:00:00.000Z", summary: "order placed" }]);
    expect(timeline.saga).toBeNull();
    expect(timelineOf(view({ created_at: "" }), [], saga).saga?.status).toBe("FAILED");
  });

  it("assembles the snapshot the page and `orderflow monitor` read", () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const stats = new OrderStats(now - 10_000);
    const snapshot = buildSnapshot({
      nowMs: now,
      stats,
      groups: ["orchestrator", "payment"],
      lag: [{ group: "payment", topic: "payments.requested", partition: 1, lag: 4 }],
      dlq: [{ topic: "orders.created.dlq", records: 2 }],
      services: [{ name: "order", status: "ok" }],
      breaker: "closed",
      latestOrders: [latestOrderOf(view())],
      stale: new Set<StaleSection>(["lag"]),
    });
    expect(snapshot).toMatchObject({
      at: "2026-01-01T12:00:00.000Z",
      windowSeconds: 60,
      totals: { created: 0, completed: 0, failed: 0, cancelled: 0, failedByReason: {} },
      latencyMs: { count: 0, p50: 0, p90: 0, p99: 0, max: 0 },
      lagByGroup: { orchestrator: 0, payment: 4 },
      dlq: [{ topic: "orders.created.dlq", records: 2 }],
      breaker: { state: "closed" },
      services: [{ name: "order", status: "ok" }],
      stale: ["lag"],
    });
    expect(snapshot.throughput).toHaveLength(60);
    expect(snapshot.throughput.at(-1)?.second).toBe(now / 1000);
    expect(snapshot.latestOrders[0]?.orderId).toBe("0b7e6c1e-2f0a-4c1b-9a55-3b1f8e1d2c3a");
  });
});
