import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { createOrchestratorMetrics, sagaOutcomeOf } from "./observability.ts";
import { decide, type SagaState, type StockStep } from "./saga.ts";
import { toOutbox, type OutboxEntry } from "./store.ts";

const context = { nowMs: 0, products: new Map(), stepTimeoutMs: 1000, maxOrderMinor: 10n ** 12n, compensationRetryMs: 10, compensationMaxAttempts: 3 };
const publish = (topic: string): OutboxEntry => ({ id: randomUUID(), kind: "publish", topic, key: "k", typeName: "", value: "" });

describe("saga outcomes", () => {
  it("names the outcome and a bounded reason of each terminal entry, and nothing else", () => {
    // An order naming SKUs the catalog does not have fails validation.
    const { state, effects } = decide(undefined, { kind: "order-created", event: create(OrderCreatedSchema, sampleOf(OrderCreatedSchema, randomUUID())) }, context);
    if (state === undefined) throw new Error("the saga should start");
    expect(state.failure?.reason).toBe(FailureReason.VALIDATION);
    const outcomes = toOutbox(effects).map((entry) => sagaOutcomeOf(entry, state)).filter((o) => o !== undefined);
    expect(outcomes).toEqual([{ outcome: "failed", reason: "validation" }]);

    const withStock = (stock: StockStep): SagaState => ({ ...state, status: OrderStatus.CANCELLED, stock });
    expect(sagaOutcomeOf(publish("orders.completed"), { ...state, status: OrderStatus.COMPLETED })).toEqual({ outcome: "completed", reason: "none" });
    expect(sagaOutcomeOf(publish("orders.cancelled"), withStock("committed"))).toEqual({ outcome: "cancelled", reason: "after_completion" });
    expect(sagaOutcomeOf(publish("orders.cancelled"), withStock("release_requested"))).toEqual({ outcome: "cancelled", reason: "before_completion" });
    expect(sagaOutcomeOf(publish("orders.failed"), { ...state, failure: { reason: FailureReason.TIMEOUT, detail: "" } })).toEqual({ outcome: "failed", reason: "timeout" });
    expect(sagaOutcomeOf(publish("payments.requested"), state)).toBeUndefined();
    expect(sagaOutcomeOf({ id: "p", kind: "park", compensation: "refund", attempts: 3 }, state)).toBeUndefined();
  });

  it("registers the counter", async () => {
    const registry = new Registry();
    createOrchestratorMetrics(registry).sagaOutcomes.inc({ outcome: "failed", reason: "payment" });
    expect(await registry.metrics()).toContain('orderflow_saga_outcomes_total{outcome="failed",reason="payment"} 1');
  });
});
