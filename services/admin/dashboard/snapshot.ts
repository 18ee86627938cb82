/**
 * The JSON the dashboard serves — the snapshot (`/dashboard/api/snapshot`, also read by
 * `orderflow monitor`) and an order's timeline (`/dashboard/api/orders/<id>`) — and the pure
 * functions that build them from the feed's parts and the read models.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { FailureReason, OrderStatus } from "../../../gen/orderflow/v1/common_pb.ts";
import { toOrder } from "../../order/orders.ts";
import type { HistoryEntry } from "../../order/projection.ts";
import type { SagaState } from "../../orchestrator/saga.ts";
import { lagByGroup, type DlqCount, type PartitionLag } from "./broker.ts";
import type { BreakerState, ServiceHealth } from "./health.ts";
import type { LatencySummary, SecondCounts } from "./rolling.ts";
import type { OrderStats, Totals } from "./stats.ts";

/** A row of the latest-orders table. */
export interface LatestOrder {
  readonly orderId: string;
  /** OrderStatus name: PENDING, VALIDATED, COMPLETED, FAILED, CANCELLED. */
  readonly status: string;
  /** FailureReason name, only on a failed order. */
  readonly failureReason?: string;
  /** Decimal amount in the order's currency, "999.99". */
  readonly total: string;
  readonly currency: string;
  /** ISO time of the last event applied to the order ("" if none). */
  readonly updatedAt: string;
}

/** Parts of the snapshot whose last refresh failed, so their figures are older than `at`. */
export type StaleSection = "lag" | "dlq" | "services" | "latestOrders";

/** Everything the page shows, at one moment. */
export interface Snapshot {
  readonly at: string;
  readonly windowSeconds: number;
  readonly throughput: readonly SecondCounts[];
  readonly totals: Totals;
  readonly latencyMs: LatencySummary;
  readonly lag: readonly PartitionLag[];
  readonly lagByGroup: Readonly<Record<string, number>>;
  readonly dlq: readonly DlqCount[];
  readonly breaker: { readonly state: BreakerState };
  readonly services: readonly ServiceHealth[];
  readonly latestOrders: readonly LatestOrder[];
  /** Sections showing their last good value because the latest refresh failed (empty normally). */
  readonly stale: readonly StaleSection[];
}

/** A stored order view (the order read model's hash) as a table row. */
export function latestOrderOf(view: Record<string, string>): LatestOrder {
  const order = toOrder(view);
  return {
    orderId: order.orderId,
    status: OrderStatus[order.status] ?? "UNSPECIFIED",
    ...(order.status === OrderStatus.FAILED ? { failureReason: FailureReason[order.failureReason] ?? "UNSPECIFIED" } : {}),
    total: order.total,
    currency: order.currency,
    updatedAt: order.updatedAt === undefined ? "" : timestampDate(order.updatedAt).toISOString(),
  };
}

/** What the page shows of the orchestrator's saga of an order (no customer data, no payment token). */
export interface SagaView {
  readonly status: string;
  readonly payment: string;
  readonly stock: string;
  readonly failure?: { readonly reason: string; readonly detail: string };
  /** ISO time by which the running steps must answer, while the saga waits on them. */
  readonly deadline?: string;
  /** Compensations sent and not yet confirmed, with their attempts. */
  readonly pending: Readonly<Record<string, number>>;
  readonly parked: readonly string[];
}

export function sagaViewOf(state: SagaState): SagaView {
  return {
    status: OrderStatus[state.status] ?? "UNSPECIFIED",
    payment: state.payment,
    stock: state.stock,
    ...(state.failure === undefined ? {} : { failure: { reason: FailureReason[state.failure.reason] ?? "UNSPECIFIED", detail: state.failure.detail } }),
    ...(state.deadlineMs === undefined ? {} : { deadline: new Date(state.deadlineMs).toISOString() }),
    pending: Object.fromEntries(Object.entries(state.pending).map(([compensation, p]) => [compensation, p?.attempts ?? 0])),
    parked: [...state.parked],
  };
}

/** One event of an order's history. */
export interface TimelineEvent {
  readonly eventId: string;
  readonly eventType: string;
  readonly topic: string;
  readonly occurredAt: string;
  readonly summary: string;
}

/** An order with its events, oldest first, and its saga when the orchestrator still has it. */
export interface Timeline {
  readonly order: LatestOrder & { readonly createdAt: string; readonly refunded: boolean; readonly items: readonly { productId: string; quantity: number; price: string }[] };
  readonly events: readonly TimelineEvent[];
  readonly saga: SagaView | null;
}

/** Builds an order's timeline from its stored view, its history and its saga state. */
export function timelineOf(view: Record<string, string>, history: readonly HistoryEntry[], saga: SagaState | undefined): Timeline {
  const order = toOrder(view);
  return {
    order: {
      ...latestOrderOf(view),
      createdAt: order.createdAt === undefined ? "" : timestampDate(order.createdAt).toISOString(),
      refunded: order.refunded,
      items: order.items.map(({ productId, quantity, price }) => ({ productId, quantity, price })),
    },
    events: history.map((e) => ({ eventId: e.event_id, eventType: e.event_type, topic: e.topic, occurredAt: e.occurred_at, summary: e.summary })),
    saga: saga === undefined ? null : sagaViewOf(saga),
  };
}

/** The feed's current parts, from which a snapshot is built. */
export interface SnapshotParts {
  readonly nowMs: number;
  readonly stats: Pick<OrderStats, "throughput" | "totals" | "latency">;
  readonly groups: readonly string[];
  readonly lag: readonly PartitionLag[];
  readonly dlq: readonly DlqCount[];
  readonly services: readonly ServiceHealth[];
  readonly breaker: BreakerState;
  readonly latestOrders: readonly LatestOrder[];
  readonly stale: ReadonlySet<StaleSection>;
}

/** The snapshot of the window ending at `parts.nowMs`. */
export function buildSnapshot(parts: SnapshotParts): Snapshot {
  const throughput = parts.stats.throughput(parts.nowMs);
  return {
    at: new Date(parts.nowMs).toISOString(),
    windowSeconds: throughput.length,
    throughput,
    totals: parts.stats.totals(),
    latencyMs: parts.stats.latency(parts.nowMs),
    lag: parts.lag,
    lagByGroup: lagByGroup(parts.lag, parts.groups),
    dlq: parts.dlq,
    breaker: { state: parts.breaker },
    services: parts.services,
    latestOrders: parts.latestOrders,
    stale: [...parts.stale],
  };
}
