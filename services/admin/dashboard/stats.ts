/**
 * Order outcomes as the dashboard counts them from the event log: each orders.created remembers when
 * the order was accepted (a bounded map, oldest evicted), each terminal event counts its outcome and,
 * if the acceptance is known, the order's end-to-end latency. Times are the events' occurred-at
 * envelope headers, so a consumer that catches up late still files every event under its own second.
 */
import { FailureReason } from "../../../gen/orderflow/v1/common_pb.ts";
import type { OrderFailed } from "../../../gen/orderflow/v1/events_pb.ts";
import type { DecodedRecord } from "../../../lib/codec/codec.ts";
import { RollingWindow, type LatencySummary, type Outcome, type SecondCounts } from "./rolling.ts";

/** The catalog topics the dashboard consumes, and the outcome each one counts as. */
export const outcomeTopics: Readonly<Record<string, Outcome>> = {
  "orders.created": "created",
  "orders.completed": "completed",
  "orders.failed": "failed",
  "orders.cancelled": "cancelled",
};

/** Counts since the dashboard started. */
export interface Totals {
  readonly created: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Failed orders by FailureReason name ("PAYMENT", "INVENTORY", …). */
  readonly failedByReason: Readonly<Record<string, number>>;
}

/** Outcome counters, rolling throughput and latency, fed one event at a time. */
export class OrderStats {
  readonly #window: RollingWindow;
  /** Acceptance time by order id, in insertion order (the oldest is evicted first). */
  readonly #accepted = new Map<string, number>();
  readonly #totals = { created: 0, completed: 0, failed: 0, cancelled: 0 };
  readonly #failedByReason: Record<string, number> = {};

  /**
   * @param startedMs events that occurred before this are charted but not added to the totals
   * @param pendingLimit how many accepted, unfinished orders are remembered for latency
   */
  constructor(
    private readonly startedMs: number,
    private readonly pendingLimit = 100_000,
    windowSeconds = 60,
  ) {
    this.#window = new RollingWindow(windowSeconds);
  }

  /** Counts one event of an outcome topic (base name); other topics are ignored. */
  observe(topic: string, record: DecodedRecord, nowMs: number): void {
    const outcome = outcomeTopics[topic];
    if (outcome === undefined) return;
    const { orderId, occurredAt } = record.envelope;
    const atMs = occurredAt.getTime();
    this.#window.count(outcome, atMs, nowMs);
    if (outcome === "created") {
      this.#accepted.delete(orderId);
      this.#accepted.set(orderId, atMs);
      if (this.#accepted.size > this.pendingLimit) {
        const oldest = this.#accepted.keys().next();
        if (oldest.done !== true) this.#accepted.delete(oldest.value);
      }
    } else {
      const acceptedMs = this.#accepted.get(orderId);
      if (acceptedMs !== undefined) {
        this.#accepted.delete(orderId);
        this.#window.latency(atMs - acceptedMs, atMs, nowMs);
      }
    }
    if (atMs < this.startedMs) return;
    this.#totals[outcome] += 1;
    if (outcome === "failed") {
      const reason = FailureReason[(record.message as OrderFailed).reason] ?? "UNSPECIFIED";
      this.#failedByReason[reason] = (this.#failedByReason[reason] ?? 0) + 1;
    }
  }

  /** Accepted orders whose end has not been seen (bounded by pendingLimit). */
  get pending(): number {
    return this.#accepted.size;
  }

  totals(): Totals {
    return { ...this.#totals, failedByReason: { ...this.#failedByReason } };
  }

  throughput(nowMs: number): SecondCounts[] {
    return this.#window.throughput(nowMs);
  }

  latency(nowMs: number): LatencySummary {
    return this.#window.latencySummary(nowMs);
  }
}
