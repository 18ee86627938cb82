/**
 * Saga outcomes as a metric: `orderflow_saga_outcomes_total{outcome, reason}`, one count per
 * terminal record (orders.completed, orders.failed, orders.cancelled).
 *
 * The outcome is judged when the record is decided (it is kept with the outbox entry) and counted
 * when the entry leaves the saga's outbox, which happens only after the record was committed (the
 * consumer's afterCommit) or acknowledged (the timer). Leaving the outbox is an atomic delete that
 * says what it deleted, so exactly one caller removes each entry: a transaction that aborts and is
 * redone counts nothing (its afterCommit never runs), and a crash between commit and removal is
 * counted once, by whoever carries out the left-over outbox. The remaining bound is Prometheus's own:
 * a process that counted and then died loses its count before a scrape took it. An order refunded
 * after completion has two terminal records (completed, then cancelled) and counts under both.
 *
 * Reasons are bounded: "none" for completed, the failure reason (validation, payment, inventory,
 * timeout) for failed, before_completion or after_completion for cancelled.
 */
import { Counter, type Registry } from "prom-client";
import { FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import type { SagaState } from "./saga.ts";

export type SagaOutcome = { readonly outcome: "completed" | "failed" | "cancelled"; readonly reason: string };

export interface OrchestratorMetrics {
  readonly sagaOutcomes: Counter<"outcome" | "reason">;
}

export function createOrchestratorMetrics(registry: Registry): OrchestratorMetrics {
  return {
    sagaOutcomes: new Counter({
      name: "orderflow_saga_outcomes_total",
      help: "Orders that reached a terminal state, by outcome and reason; counted once per terminal record once it is committed",
      labelNames: ["outcome", "reason"],
      registers: [registry],
    }),
  };
}

/** The outcome a record on `topic` announces, judged with the state that decided it; undefined for any other record. */
export function sagaOutcomeOf(topic: string, state: SagaState): SagaOutcome | undefined {
  switch (topic) {
    case "orders.completed":
      return { outcome: "completed", reason: "none" };
    case "orders.failed":
      return { outcome: "failed", reason: FailureReason[state.failure?.reason ?? FailureReason.UNSPECIFIED].toLowerCase() };
    case "orders.cancelled":
      return { outcome: "cancelled", reason: state.stock === "committed" ? "after_completion" : "before_completion" };
    default:
      return undefined;
  }
}
