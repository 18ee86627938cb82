/**
 * The order read model, derived only from events (event sourcing). Each event is applied once,
 * by its event id, in one Lua script that also appends it to the order's history. Events of one
 * order arrive on several topics, so their interleaving varies; the result does not: status only
 * moves up a fixed rank, and the history is read sorted by event time. Dropping the model and
 * replaying the log therefore gives the same orders (tested).
 *
 * Keys (under the service prefix): order:{id} hash (the view; terminal_at and terminal_status
 * remember the first terminal event), order:{id}:events zset (history, scored by time),
 * order:{id}:seen set (applied event ids), orders zset (all, by creation time),
 * orders:customer:{id} zset.
 *
 * The end-to-end latency (accepted → first terminal event) is observed once per order, by the
 * event that completes the pair — the terminal event, or orders.created when it is projected
 * after it — and only by the live consumer (a rebuild observes nothing).
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { OrderStatus, FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import {
  EmailTemplate,
  ReleaseReason,
  type InventoryReleased,
  type InventoryReservationFailed,
  type OrderCancelled,
  type OrderCompleted,
  type OrderCreated,
  type OrderFailed,
  type PaymentCompleted,
  type PaymentFailed,
  type PaymentRefunded,
  type NotificationSent,
} from "../../gen/orderflow/v1/events_pb.ts";
import type { DecodedRecord } from "../../lib/codec/codec.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { formatMinor } from "./money.ts";

/** The catalog topics the projection reads. */
export const projectionTopics = [
  "orders.created",
  "orders.validated",
  "orders.completed",
  "orders.failed",
  "orders.cancelled",
  "payments.completed",
  "payments.failed",
  "payments.refunded",
  "inventory.reserved",
  "inventory.failed",
  "inventory.released",
  "inventory.committed",
  "notifications.sent",
] as const;

/** Status rank: a status only replaces one of lower rank. */
const rank: Partial<Record<OrderStatus, number>> = {
  [OrderStatus.PENDING]: 1,
  [OrderStatus.VALIDATED]: 2,
  [OrderStatus.COMPLETED]: 3,
  [OrderStatus.FAILED]: 3,
  [OrderStatus.CANCELLED]: 4,
};

/** What one event changes in the view, and how it reads in the history. */
export interface Change {
  readonly fields: Record<string, string>;
  readonly status?: OrderStatus;
  readonly summary: string;
  readonly customerId?: string;
}

function money(m: { currencyCode: string; amountMinor: bigint } | undefined): string {
  return m === undefined ? "" : `${formatMinor(m.amountMinor, m.currencyCode)} ${m.currencyCode}`;
}

/** The view change of one event; pure, so the rules are unit-tested. */
export function changeOf(topic: string, message: unknown): Change {
  switch (topic) {
    case "orders.created": {
      const e = message as OrderCreated;
      const currency = e.total?.currencyCode ?? "";
      return {
        status: OrderStatus.PENDING,
        customerId: e.customerId,
        fields: {
          order_id: e.orderId,
          customer_id: e.customerId,
          currency,
          total: formatMinor(e.total?.amountMinor ?? 0n, currency),
          items: JSON.stringify(e.items.map((i) => ({ product_id: i.productId, quantity: i.quantity, price: formatMinor(i.unitPrice?.amountMinor ?? 0n, currency) }))),
          card_last4: e.payment?.cardLast4 ?? "",
          created_at: e.createdAt === undefined ? "" : timestampDate(e.createdAt).toISOString(),
        },
        summary: `order placed: ${e.items.length} line(s), ${money(e.total)}`,
      };
    }
    case "orders.validated":
      return { status: OrderStatus.VALIDATED, fields: {}, summary: "business rules passed" };
    case "orders.completed":
      return { status: OrderStatus.COMPLETED, fields: { payment_id: (message as OrderCompleted).paymentId }, summary: "order completed" };
    case "orders.failed": {
      const e = message as OrderFailed;
      return {
        status: OrderStatus.FAILED,
        fields: { failure_reason: String(e.reason), failure_detail: e.detail },
        summary: `order failed (${FailureReason[e.reason]}): ${e.detail}`,
      };
    }
    case "orders.cancelled":
      return { status: OrderStatus.CANCELLED, fields: {}, summary: `order cancelled: ${(message as OrderCancelled).reason || "no reason given"}` };
    case "payments.completed":
      return { fields: {}, summary: `payment taken: ${money((message as PaymentCompleted).amount)}` };
    case "payments.failed":
      return { fields: {}, summary: `payment failed: ${(message as PaymentFailed).message}` };
    case "payments.refunded": {
      const e = message as PaymentRefunded;
      return { fields: { refunded: "1" }, summary: `${e.voided ? "payment voided" : "payment refunded"}: ${money(e.amount)}` };
    }
    case "inventory.reserved":
      return { fields: {}, summary: "stock reserved" };
    case "inventory.failed":
      return {
        fields: {},
        summary: `stock short: ${(message as InventoryReservationFailed).shortages.map((s) => `${s.productId} ${s.requested}/${s.available}`).join(", ")}`,
      };
    case "inventory.released":
      return { fields: {}, summary: `stock released (${ReleaseReason[(message as InventoryReleased).reason]})` };
    case "inventory.committed":
      return { fields: {}, summary: "stock committed" };
    case "notifications.sent":
      return { fields: {}, summary: `email sent: ${EmailTemplate[(message as NotificationSent).template]}` };
    default:
      throw new Error(`the projection does not read ${topic}`);
  }
}

/** Rank from which a status is terminal. */
const TERMINAL_RANK = 3;

/**
 * Returns {0} for an event applied before, {1} otherwise — plus, from the one event that completes
 * the pair (the first terminal event, or orders.created arriving after it), the order's accepted
 * time, terminal time and terminal status, for the end-to-end latency.
 */
const applyScript = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {0} end
local oldRank = tonumber(redis.call('HGET', KEYS[1], 'status_rank') or '0')
local fields = cjson.decode(ARGV[4])
for name, value in pairs(fields) do redis.call('HSET', KEYS[1], name, value) end
local newRank = tonumber(ARGV[6])
if newRank > oldRank then
  redis.call('HSET', KEYS[1], 'status', ARGV[5], 'status_rank', ARGV[6])
end
local terminal = tonumber(ARGV[10])
local endsNow = newRank >= terminal and oldRank < terminal
if endsNow then redis.call('HSET', KEYS[1], 'terminal_at', ARGV[7], 'terminal_status', ARGV[5]) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
if (redis.call('HGET', KEYS[1], 'updated_at') or '') < ARGV[7] then redis.call('HSET', KEYS[1], 'updated_at', ARGV[7]) end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
if ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[9])
  redis.call('ZADD', KEYS[5], ARGV[2], ARGV[9])
end
if endsNow or (fields['created_at'] ~= nil and oldRank >= terminal) then
  local times = redis.call('HMGET', KEYS[1], 'created_at', 'terminal_at', 'terminal_status')
  if times[1] and times[1] ~= '' and times[2] then return {1, times[1], times[2], times[3]} end
end
return {1}`;

type ProjectionRedis = Redis & {
  projectEvent(
    order: string, seen: string, events: string, all: string, byCustomer: string,
    eventId: string, score: string, entry: string, fields: string, status: string, statusRank: string, updatedAt: string, customerId: string, orderId: string,
    terminalRank: string,
  ): Promise<[applied: number, acceptedAt?: string, endedAt?: string, terminalStatus?: string]>;
};

/** Where the projection reports how long orders took from acceptance to their terminal state. */
export interface ProjectionObservers {
  /** Seconds from the order's created_at to its first terminal event's occurredAt, by outcome. */
  readonly e2eSeconds?: { observe(labels: { outcome: string }, seconds: number): void };
}

/** One entry of an order's history as stored. */
export interface HistoryEntry {
  readonly event_id: string;
  readonly event_type: string;
  readonly topic: string;
  readonly occurred_at: string;
  readonly summary: string;
}

export class OrderProjection {
  readonly #redis: ProjectionRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly observers: ProjectionObservers = {},
  ) {
    redis.defineCommand("projectEvent", { numberOfKeys: 5, lua: applyScript });
    this.#redis = redis as ProjectionRedis;
  }

  /** Applies one event; returns false when it was applied before. */
  async apply(topic: string, record: DecodedRecord): Promise<boolean> {
    const { envelope } = record;
    const orderId = envelope.orderId;
    const change = changeOf(topic, record.message);
    const entry: HistoryEntry = {
      event_id: envelope.eventId,
      event_type: envelope.eventType,
      topic,
      occurred_at: envelope.occurredAt.toISOString(),
      summary: change.summary,
    };
    const customerId = change.customerId ?? "";
    const [applied, acceptedAt, endedAt, terminalStatus] = await this.#redis.projectEvent(
      this.keys("order", orderId),
      this.keys("order", orderId, "seen"),
      this.keys("order", orderId, "events"),
      this.keys("orders"),
      this.keys("orders", "customer", customerId),
      envelope.eventId,
      String(envelope.occurredAt.getTime()),
      JSON.stringify(entry),
      JSON.stringify(change.fields),
      String(change.status ?? 0),
      String(change.status === undefined ? 0 : (rank[change.status] ?? 0)),
      envelope.occurredAt.toISOString(),
      customerId,
      orderId,
      String(TERMINAL_RANK),
    );
    if (acceptedAt !== undefined && endedAt !== undefined) this.#observeEndToEnd(acceptedAt, endedAt, Number(terminalStatus));
    return applied === 1;
  }

  /** Telemetry only: an unreadable time is skipped; clock skew between hosts is clamped to zero. */
  #observeEndToEnd(acceptedAt: string, endedAt: string, status: OrderStatus): void {
    const seconds = (Date.parse(endedAt) - Date.parse(acceptedAt)) / 1000;
    const outcome = OrderStatus[status]?.toLowerCase();
    if (Number.isFinite(seconds) && outcome !== undefined) this.observers.e2eSeconds?.observe({ outcome }, Math.max(0, seconds));
  }

  /** The stored view of an order, or undefined. */
  async view(orderId: string): Promise<Record<string, string> | undefined> {
    const view = await this.#redis.hgetall(this.keys("order", orderId));
    return view["order_id"] === undefined ? undefined : view;
  }

  /** The order's history, oldest first (ties broken by event id, which is time-ordered). */
  async history(orderId: string): Promise<HistoryEntry[]> {
    const raw = await this.#redis.zrange(this.keys("order", orderId, "events"), 0, -1);
    return raw
      .map((entry) => JSON.parse(entry) as HistoryEntry)
      .sort((a, b) => a.occurred_at.localeCompare(b.occurred_at) || a.event_id.localeCompare(b.event_id));
  }

  /** Order ids newest first, optionally of one customer, from `offset`. */
  ids(customerId: string | undefined, offset: number, count: number): Promise<string[]> {
    const key = customerId ? this.keys("orders", "customer", customerId) : this.keys("orders");
    return this.#redis.zrevrange(key, offset, offset + count - 1);
  }

  /** Deletes the whole read model (before a rebuild). Returns how many keys went. */
  async drop(): Promise<number> {
    let removed = 0;
    for (const pattern of [this.keys("order", "*"), this.keys("orders"), this.keys("orders", "*")]) {
      let cursor = "0";
      do {
        const [next, found] = await this.#redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (found.length > 0) removed += await this.#redis.del(...found);
      } while (cursor !== "0");
    }
    return removed;
  }
}
