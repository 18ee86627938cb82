/**
 * The order read model, derived only from events (event sourcing). It is fed from the order's
 * lifecycle, not from every service: the order service applies orders.created itself when it accepts
 * an order (right after the broker acked it, with that record's event id and time); the live
 * consumer reads orders.validated, orders.completed, orders.failed and orders.cancelled, plus
 * payments.refunded (the one fact no lifecycle event can carry: a charge that landed after the order
 * failed is refunded later). A rebuild replays orders.created and those topics.
 *
 * Each event is applied once, by its event id, in one Lua script that also appends it to the
 * order's history. Arrival order varies (the accept-time write races the lifecycle); the result
 * does not: status only moves up a fixed rank, the history is read sorted by event time, and the
 * order's own data (lines, total, card, created_at) that lifecycle events repeat only fills a view
 * that lacks it — orders.created, when applied, is authoritative. So a lifecycle event still makes
 * a usable view when the accept-time write failed, and dropping the model and replaying the log
 * gives the same orders (tested).
 *
 * Keys (under the service prefix): order:{id} hash (the view; terminal_at and terminal_status
 * remember the earliest terminal event), order:{id}:events zset (history, scored by time),
 * order:{id}:seen set (applied event ids), orders zset (all, by creation time),
 * orders:customer:{id} zset.
 *
 * Lifetimes: the model is rebuildable from the log (`orderflow orders rebuild`), so it is kept for
 * `lifetimeMs` (READ_MODEL_TTL_MS, 30 days by default) after the order's last change: each applied
 * event sets the view, its history and its seen ids to expire then. The listing indexes expire
 * after their last write and, on every write, drop the orders listed (created) longer ago than the
 * lifetime — so an index never keeps an order whose view has expired. An order changed long after
 * it was placed (a late refund) stays readable by id until its view expires, though it left the
 * listing a lifetime after its creation.
 *
 * The end-to-end latency (accepted → first terminal event) is observed once per order, by the
 * event after which the view first holds both a created_at and a terminal status — and only where
 * an observer is given (the order service; a rebuild observes nothing).
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { OrderStatus, FailureReason, type LineItem, type Money } from "../../gen/orderflow/v1/common_pb.ts";
import type { OrderCancelled, OrderCompleted, OrderCreated, OrderFailed, OrderValidated, PaymentRefunded } from "../../gen/orderflow/v1/events_pb.ts";
import type { Envelope } from "../../lib/codec/envelope.ts";
import { DEFAULT_READ_MODEL_LIFETIME_MS } from "../../lib/lifetimes.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { formatMinor } from "./money.ts";

/** The topics the live projection consumes (orders.created is applied by the order service as it accepts). */
export const liveTopics = ["orders.validated", "orders.completed", "orders.failed", "orders.cancelled", "payments.refunded"] as const;

/** The topics a rebuild replays: everything the live model was built from. */
export const rebuildTopics = ["orders.created", ...liveTopics] as const;

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
  /** What the event states; written over the view. */
  readonly fields: Record<string, string>;
  /** The order's own data as a lifecycle event repeats it; written only where the view has none. */
  readonly fill: Record<string, string>;
  readonly status?: OrderStatus;
  readonly summary: string;
  readonly customerId?: string;
  /** The order's acceptance time, when the event knows it: the order is listed by it. */
  readonly createdAt?: Date;
  /**
   * The event's time when its message says it better than the envelope: orders.created is placed
   * at its created_at, which the order service knows before publishing (and so can apply it with).
   */
  readonly occurredAt?: Date;
}

function money(m: Money | undefined): string {
  return m === undefined ? "" : `${formatMinor(m.amountMinor, m.currencyCode)} ${m.currencyCode}`;
}

function dateOf(t: Timestamp | undefined): Date | undefined {
  return t === undefined ? undefined : timestampDate(t);
}

/** The view's fields for an order's lines and total, the same from every event that carries them. */
function orderData(items: readonly LineItem[], total: Money | undefined, cardLast4: string, createdAt: Date | undefined): Record<string, string> {
  const currency = total?.currencyCode ?? "";
  return {
    currency,
    total: formatMinor(total?.amountMinor ?? 0n, currency),
    items: JSON.stringify(items.map((i) => ({ product_id: i.productId, quantity: i.quantity, price: formatMinor(i.unitPrice?.amountMinor ?? 0n, currency) }))),
    card_last4: cardLast4,
    ...(createdAt === undefined ? {} : { created_at: createdAt.toISOString() }),
  };
}

const refundNote = (refunded: boolean) => (refunded ? "; the charge is being refunded" : "");

/** The view change of one event; pure, so the rules are unit-tested. */
export function changeOf(topic: string, message: unknown): Change {
  switch (topic) {
    case "orders.created": {
      const e = message as OrderCreated;
      const createdAt = dateOf(e.createdAt);
      return {
        status: OrderStatus.PENDING,
        customerId: e.customerId,
        fields: { order_id: e.orderId, customer_id: e.customerId, ...orderData(e.items, e.total, e.payment?.cardLast4 ?? "", createdAt) },
        fill: {},
        summary: `order placed: ${e.items.length} line(s), ${money(e.total)}`,
        ...(createdAt === undefined ? {} : { createdAt, occurredAt: createdAt }),
      };
    }
    case "orders.validated": {
      const e = message as OrderValidated;
      const createdAt = dateOf(e.createdAt);
      return {
        status: OrderStatus.VALIDATED,
        customerId: e.customerId,
        fields: { order_id: e.orderId, customer_id: e.customerId },
        fill: orderData(e.items, e.total, e.cardLast4, createdAt),
        summary: "business rules passed",
        ...(createdAt === undefined ? {} : { createdAt }),
      };
    }
    case "orders.completed": {
      const e = message as OrderCompleted;
      return {
        status: OrderStatus.COMPLETED,
        customerId: e.customerId,
        fields: { order_id: e.orderId, customer_id: e.customerId, payment_id: e.paymentId },
        fill: { currency: e.total?.currencyCode ?? "", total: formatMinor(e.total?.amountMinor ?? 0n, e.total?.currencyCode ?? "") },
        summary: `order completed: paid ${money(e.total)} (payment ${e.paymentId})`,
      };
    }
    case "orders.failed": {
      const e = message as OrderFailed;
      const createdAt = dateOf(e.createdAt);
      return {
        status: OrderStatus.FAILED,
        customerId: e.customerId,
        fields: { order_id: e.orderId, customer_id: e.customerId, failure_reason: String(e.reason), failure_detail: e.detail },
        fill: createdAt === undefined ? {} : { created_at: createdAt.toISOString() },
        summary: `order failed (${FailureReason[e.reason]}): ${e.detail}${refundNote(e.refunded)}`,
        ...(createdAt === undefined ? {} : { createdAt }),
      };
    }
    case "orders.cancelled": {
      const e = message as OrderCancelled;
      return {
        status: OrderStatus.CANCELLED,
        customerId: e.customerId,
        fields: { order_id: e.orderId, customer_id: e.customerId },
        fill: {},
        summary: `order cancelled: ${e.reason || "no reason given"}${refundNote(e.refunded)}`,
      };
    }
    case "payments.refunded": {
      const e = message as PaymentRefunded;
      return { fields: { refunded: "1" }, fill: {}, summary: `${e.voided ? "payment voided" : "payment refunded"}: ${money(e.amount)}` };
    }
    default:
      throw new Error(`the projection does not read ${topic}`);
  }
}

/** Rank from which a status is terminal. */
const TERMINAL_RANK = 3;

/**
 * Returns {0} for an event applied before, {1} otherwise — plus, from the one event after which
 * the view first holds both a created_at and a terminal status, the order's accepted time,
 * terminal time and terminal status, for the end-to-end latency. terminal_at and terminal_status
 * are those of the earliest terminal event by time (not by arrival), so a rebuild that reads the
 * lifecycle topics interleaved otherwise ends the same. An order is listed (orders and
 * orders:customer zsets) by its created_at when the event knows it, else by the event's time until
 * one that knows it comes.
 */
const applyScript = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {0} end
local terminal = tonumber(ARGV[11])
local oldRank = tonumber(redis.call('HGET', KEYS[1], 'status_rank') or '0')
local hadCreated = (redis.call('HGET', KEYS[1], 'created_at') or '') ~= ''
for name, value in pairs(cjson.decode(ARGV[4])) do redis.call('HSET', KEYS[1], name, value) end
for name, value in pairs(cjson.decode(ARGV[5])) do redis.call('HSETNX', KEYS[1], name, value) end
local newRank = tonumber(ARGV[7])
if newRank > oldRank then
  redis.call('HSET', KEYS[1], 'status', ARGV[6], 'status_rank', ARGV[7])
end
if newRank >= terminal and (redis.call('HGET', KEYS[1], 'terminal_at') or '~') > ARGV[8] then
  redis.call('HSET', KEYS[1], 'terminal_at', ARGV[8], 'terminal_status', ARGV[6])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
if (redis.call('HGET', KEYS[1], 'updated_at') or '') < ARGV[8] then redis.call('HSET', KEYS[1], 'updated_at', ARGV[8]) end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
if ARGV[9] ~= '' then
  for _, index in ipairs({KEYS[4], KEYS[5]}) do
    if ARGV[10] == '' then redis.call('ZADD', index, 'NX', ARGV[2], ARGV[9]) else redis.call('ZADD', index, ARGV[10], ARGV[9]) end
  end
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[12]) end
local listedSince = '(' .. (tonumber(ARGV[13]) - tonumber(ARGV[12]))
for _, index in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('ZREMRANGEBYSCORE', index, '-inf', listedSince)
  redis.call('PEXPIRE', index, ARGV[12])
end
local hasCreated = hadCreated or (redis.call('HGET', KEYS[1], 'created_at') or '') ~= ''
if hasCreated and math.max(oldRank, newRank) >= terminal and not (hadCreated and oldRank >= terminal) then
  local times = redis.call('HMGET', KEYS[1], 'created_at', 'terminal_at', 'terminal_status')
  return {1, times[1], times[2], times[3]}
end
return {1}`;

type ProjectionRedis = Redis & {
  projectEvent(
    order: string, seen: string, events: string, all: string, byCustomer: string,
    eventId: string, score: string, entry: string, fields: string, fill: string, status: string, statusRank: string, occurredAt: string,
    listedId: string, listedAt: string, terminalRank: string, lifetimeMs: string, nowMs: string,
  ): Promise<[applied: number, acceptedAt?: string, endedAt?: string, terminalStatus?: string]>;
};

/** One event as the projection needs it: a consumed record, or the order service's own orders.created. */
export interface ProjectedEvent {
  readonly envelope: Pick<Envelope, "eventId" | "eventType" | "orderId" | "occurredAt">;
  readonly message: unknown;
}

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

  /** `lifetimeMs`: how long an order's view lives after its last change (READ_MODEL_TTL_MS); readers may leave the default. */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly observers: ProjectionObservers = {},
    private readonly lifetimeMs: number = DEFAULT_READ_MODEL_LIFETIME_MS,
    private readonly now: () => number = Date.now,
  ) {
    redis.defineCommand("projectEvent", { numberOfKeys: 5, lua: applyScript });
    this.#redis = redis as ProjectionRedis;
  }

  /** Applies one event; returns false when it was applied before. */
  async apply(topic: string, event: ProjectedEvent): Promise<boolean> {
    const { envelope } = event;
    const orderId = envelope.orderId;
    const change = changeOf(topic, event.message);
    const occurredAt = change.occurredAt ?? envelope.occurredAt;
    const entry: HistoryEntry = {
      event_id: envelope.eventId,
      event_type: envelope.eventType,
      topic,
      occurred_at: occurredAt.toISOString(),
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
      String(occurredAt.getTime()),
      JSON.stringify(entry),
      JSON.stringify(change.fields),
      JSON.stringify(change.fill),
      String(change.status ?? 0),
      String(change.status === undefined ? 0 : (rank[change.status] ?? 0)),
      occurredAt.toISOString(),
      customerId === "" ? "" : orderId,
      change.createdAt === undefined ? "" : String(change.createdAt.getTime()),
      String(TERMINAL_RANK),
      String(this.lifetimeMs),
      String(this.now()),
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
