import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCancelRequestedSchema, OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { createOrchestratorMetrics, sagaOutcomeOf } from "./observability.ts";
import { toOutbox } from "./outbox.ts";
import { decide, type SagaState, type StockStep } from "./saga.ts";

const context = { nowMs: 0, products: new Map(), stepTimeoutMs: 1000, maxOrderMinor: 10n ** 12n, compensationRetryMs: 10, compensationMaxAttempts: 3 };

describe("saga outcomes", () => {
  it("names the outcome and a bounded reason of each terminal record, and nothing else", () => {
    // An order naming SKUs the catalog does not have fails validation.
    const { state, effects } = decide(undefined, { kind: "order-created", event: create(OrderCreatedSchema, sampleOf(OrderCreatedSchema, randomUUID())) }, context);
    if (state === undefined) throw new Error("the saga should start");
    expect(state.failure?.reason).toBe(FailureReason.VALIDATION);
    const outcomes = toOutbox(effects, { encoding: "binary", state }).flatMap((entry) => (entry.kind === "publish" && entry.outcome !== undefined ? [entry.outcome] : []));
    expect(outcomes).toEqual([{ outcome: "failed", reason: "validation" }]);

    const withStock = (stock: StockStep): SagaState => ({ ...state, status: OrderStatus.CANCELLED, stock });
    expect(sagaOutcomeOf("orders.completed", { ...state, status: OrderStatus.COMPLETED })).toEqual({ outcome: "completed", reason: "none" });
    expect(sagaOutcomeOf("orders.cancelled", withStock("committed"))).toEqual({ outcome: "cancelled", reason: "after_completion" });
    expect(sagaOutcomeOf("orders.cancelled", withStock("release_requested"))).toEqual({ outcome: "cancelled", reason: "before_completion" });
    expect(sagaOutcomeOf("orders.failed", { ...state, failure: { reason: FailureReason.TIMEOUT, detail: "" } })).toEqual({ outcome: "failed", reason: "timeout" });
    expect(sagaOutcomeOf("payments.requested", state)).toBeUndefined();
  });

  it("judges a cancel after completion by the state that decided it", () => {
    const orderId = randomUUID();
    const completed: SagaState = { ...decide(undefined, { kind: "order-created", event: create(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId)) }, context).state!, status: OrderStatus.COMPLETED, stock: "committed", payment: "charged" };
    const { state, effects } = decide(completed, { kind: "cancel-requested", event: create(OrderCancelRequestedSchema, sampleOf(OrderCancelRequestedSchema, orderId)) }, context);
    if (state === undefined) throw new Error("the saga should go on");
    const outcomes = toOutbox(effects, { encoding: "binary", state }).flatMap((entry) => (entry.kind === "publish" && entry.outcome !== undefined ? [entry.outcome] : []));
    expect(outcomes).toEqual([{ outcome: "cancelled", reason: "after_completion" }]);
  });

  it("registers the counter", async () => {
    const registry = new Registry();
    createOrchestratorMetrics(registry).sagaOutcomes.inc({ outcome: "failed", reason: "payment" });
    expect(await registry.metrics()).toContain('orderflow_saga_outcomes_total{outcome="failed",reason="payment"} 1');
  });
});
