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
 * Keys (under the prefix of a generation of the model, generations.ts): order:{id} hash (the view;
 * terminal_at and terminal_status remember the earliest terminal event), order:{id}:events zset
 * (history, scored by time), order:{id}:seen set (applied event ids), orders zset (all, by creation
 * time), orders:customer:{id} zset. Readers read the live generation; the live projection writes
 * the live one and, while a rebuild runs, the rebuild's too (rebuild.ts).
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
import { generationLua, keyBase, livePointerKey, ReadModelGenerations, rebuildClaimKey, type RebuildClaim } from "./generations.ts";
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

/** The status each lifecycle topic's event states (payments.refunded states none). */
const statusOfTopic: Readonly<Record<string, OrderStatus>> = {
  "orders.created": OrderStatus.PENDING,
  "orders.validated": OrderStatus.VALIDATED,
  "orders.completed": OrderStatus.COMPLETED,
  "orders.failed": OrderStatus.FAILED,
  "orders.cancelled": OrderStatus.CANCELLED,
};

/** For carrying history over: each topic's [status, rank], as the scripts read them. */
const statusEffectsJson = JSON.stringify(
  Object.fromEntries(Object.entries(statusOfTopic).map(([topic, status]) => [topic, [String(status), String(rank[status] ?? 0)]])),
);

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
        status: statusOfTopic["orders.created"],
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
        status: statusOfTopic["orders.validated"],
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
        status: statusOfTopic["orders.completed"],
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
        status: statusOfTopic["orders.failed"],
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
        status: statusOfTopic["orders.cancelled"],
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
 * Applies one event to the generations it is written to: live mode (writer '') applies it to the
 * live generation and, while a rebuild is writing one, to that generation too, in this one script —
 * so relative to a rebuild's swap an event lands wholly before it (in both) or wholly after it (in
 * the new live one); rebuild mode (writer = the rebuild's owner token) applies it to the rebuild's
 * generation only, and fails once that rebuild no longer holds its claim.
 *
 * Per generation: returns {0} for an event applied before, {1} otherwise — plus, from the one
 * event after which the view first holds both a created_at and a terminal status, the order's
 * accepted time, terminal time and terminal status, for the end-to-end latency (taken from the
 * live generation). terminal_at and terminal_status are those of the earliest terminal event by
 * time (not by arrival), so a rebuild that reads the lifecycle topics interleaved otherwise ends
 * the same. An order is listed (orders and orders:customer zsets) by its created_at when the event
 * knows it, else by the event's time until one that knows it comes. Every apply in live mode also
 * renews the live-generation pointer's lifetime, so the pointer outlives every key it names.
 */
const applyScript = `${generationLua}
local eventId, score, entry, fields, fill, status, statusRank, occurredAt = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local listedId, listedAt, terminal, lifetime, now = ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[13], tonumber(ARGV[14])
local orderId, customerId, writer = ARGV[15], ARGV[16], ARGV[17]
local function applyTo(base)
  local view, seen, events = base .. 'order:' .. orderId, base .. 'order:' .. orderId .. ':seen', base .. 'order:' .. orderId .. ':events'
  local indexes = {base .. 'orders', base .. 'orders:customer:' .. customerId}
  if redis.call('SADD', seen, eventId) == 0 then return {0} end
  local oldRank = tonumber(redis.call('HGET', view, 'status_rank') or '0')
  local hadCreated = (redis.call('HGET', view, 'created_at') or '') ~= ''
  for name, value in pairs(cjson.decode(fields)) do redis.call('HSET', view, name, value) end
  for name, value in pairs(cjson.decode(fill)) do redis.call('HSETNX', view, name, value) end
  local newRank = tonumber(statusRank)
  if newRank > oldRank then
    redis.call('HSET', view, 'status', status, 'status_rank', statusRank)
  end
  if newRank >= terminal and (redis.call('HGET', view, 'terminal_at') or '~') > occurredAt then
    redis.call('HSET', view, 'terminal_at', occurredAt, 'terminal_status', status)
  end
  redis.call('HINCRBY', view, 'version', 1)
  if (redis.call('HGET', view, 'updated_at') or '') < occurredAt then redis.call('HSET', view, 'updated_at', occurredAt) end
  redis.call('ZADD', events, score, entry)
  if listedId ~= '' then
    for _, index in ipairs(indexes) do
      if listedAt == '' then redis.call('ZADD', index, 'NX', score, listedId) else redis.call('ZADD', index, listedAt, listedId) end
    end
  end
  for _, key in ipairs({view, events, seen}) do redis.call('PEXPIRE', key, lifetime) end
  local listedSince = '(' .. (now - tonumber(lifetime))
  for _, index in ipairs(indexes) do
    redis.call('ZREMRANGEBYSCORE', index, '-inf', listedSince)
    redis.call('PEXPIRE', index, lifetime)
  end
  local hasCreated = hadCreated or (redis.call('HGET', view, 'created_at') or '') ~= ''
  if hasCreated and math.max(oldRank, newRank) >= terminal and not (hadCreated and oldRank >= terminal) then
    local times = redis.call('HMGET', view, 'created_at', 'terminal_at', 'terminal_status')
    return {1, times[1], times[2], times[3]}
  end
  return {1}
end
local targets = {}
if writer == '' then
  targets[1] = liveGeneration()
  if targets[1] ~= 0 then redis.call('PEXPIRE', KEYS[1], lifetime) end
  local rebuild = redis.call('HMGET', KEYS[2], 'generation', 'writing')
  if rebuild[2] == '1' then targets[2] = tonumber(rebuild[1]) end
else
  local rebuild = redis.call('HMGET', KEYS[2], 'owner', 'generation')
  if rebuild[1] ~= writer then return redis.error_reply('REBUILD_LOST the rebuild no longer holds the read model (its claim lapsed or was taken over)') end
  targets[1] = tonumber(rebuild[2])
end
local result
for i, generation in ipairs(targets) do
  local applied = applyTo(generationBase(generation))
  if i == 1 then result = applied end
end
return result`;

/**
 * Carries one order over from generation ARGV[3] into the rebuild's generation ARGV[4] (while the
 * rebuild, owner ARGV[2], holds its claim): each history entry whose event the rebuild's
 * generation has not seen is added with its event id, and its topic's status effect applied as
 * the live script would (rank only rises; earliest terminal event wins); if any was carried, view
 * fields the new view lacks are filled from the old one (all of them, for an order the replay did
 * not meet) and the order is listed as it was. Keys keep the later of their own and the old
 * view's expiry. Returns how many events were carried over.
 */
const carryOverScript = `${generationLua}
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return redis.error_reply('REBUILD_LOST the rebuild no longer holds the read model (its claim lapsed or was taken over)') end
local fromBase, toBase, orderId = generationBase(tonumber(ARGV[3])), generationBase(tonumber(ARGV[4])), ARGV[5]
local from, to = fromBase .. 'order:' .. orderId, toBase .. 'order:' .. orderId
local old = redis.call('HGETALL', from)
if #old == 0 then return 0 end
local effects, terminal, lifetime = cjson.decode(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local hadView = redis.call('EXISTS', to) == 1
local currentRank = tonumber(redis.call('HGET', to, 'status_rank') or '0')
local carried = 0
local entries = redis.call('ZRANGE', from .. ':events', 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local entry = cjson.decode(entries[i])
  if redis.call('SADD', to .. ':seen', entry.event_id) == 1 then
    carried = carried + 1
    redis.call('ZADD', to .. ':events', entries[i + 1], entries[i])
    local effect = effects[entry.topic]
    if effect then
      local status, statusRank = effect[1], tonumber(effect[2])
      if statusRank > currentRank then
        currentRank = statusRank
        redis.call('HSET', to, 'status', status, 'status_rank', effect[2])
      end
      if statusRank >= terminal and (redis.call('HGET', to, 'terminal_at') or '~') > entry.occurred_at then
        redis.call('HSET', to, 'terminal_at', entry.occurred_at, 'terminal_status', status)
      end
    end
    if (redis.call('HGET', to, 'updated_at') or '') < entry.occurred_at then redis.call('HSET', to, 'updated_at', entry.occurred_at) end
  end
end
if carried == 0 then return 0 end
if hadView then redis.call('HINCRBY', to, 'version', carried) end
for i = 1, #old, 2 do redis.call('HSETNX', to, old[i], old[i + 1]) end
local listedAt = redis.call('ZSCORE', fromBase .. 'orders', orderId)
local customerId = redis.call('HGET', to, 'customer_id') or ''
if listedAt then
  local indexes = {toBase .. 'orders'}
  if customerId ~= '' then indexes[2] = toBase .. 'orders:customer:' .. customerId end
  for _, index in ipairs(indexes) do
    redis.call('ZADD', index, 'NX', listedAt, orderId)
    redis.call('PEXPIRE', index, lifetime)
  end
end
local expiry = redis.call('PTTL', from)
if expiry < 0 then expiry = lifetime end
for _, key in ipairs({to, to .. ':events', to .. ':seen'}) do
  if redis.call('PTTL', key) < expiry then redis.call('PEXPIRE', key, expiry) end
end
return carried`;

/** The live generation's view of an order (HGETALL). */
const viewScript = `${generationLua}
return redis.call('HGETALL', generationBase(liveGeneration()) .. 'order:' .. ARGV[2])`;

/** The live generation's history of an order (ZRANGE). */
const historyScript = `${generationLua}
return redis.call('ZRANGE', generationBase(liveGeneration()) .. 'order:' .. ARGV[2] .. ':events', 0, -1)`;

/** A page of the live generation's listing (ARGV[2]: 'orders' or 'orders:customer:{id}'), newest first. */
const idsScript = `${generationLua}
return redis.call('ZREVRANGE', generationBase(liveGeneration()) .. ARGV[2], ARGV[3], ARGV[4])`;

type ProjectionRedis = Redis & {
  projectEvent(
    livePointer: string, rebuildClaim: string, base: string,
    eventId: string, score: string, entry: string, fields: string, fill: string, status: string, statusRank: string, occurredAt: string,
    listedId: string, listedAt: string, terminalRank: string, lifetimeMs: string, nowMs: string,
    orderId: string, customerId: string, writer: string,
  ): Promise<[applied: number, acceptedAt?: string, endedAt?: string, terminalStatus?: string]>;
  liveOrderView(livePointer: string, base: string, orderId: string): Promise<string[]>;
  liveOrderHistory(livePointer: string, base: string, orderId: string): Promise<string[]>;
  liveOrderIds(livePointer: string, base: string, index: string, start: string, stop: string): Promise<string[]>;
  carryOrderOver(
    livePointer: string, rebuildClaim: string, base: string,
    owner: string, from: string, to: string, orderId: string, statusEffects: string, terminalRank: string, lifetimeMs: string,
  ): Promise<number>;
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
  /** The model's generations: which one is live, and a rebuild's claim, swap and clean-up. */
  readonly generations: ReadModelGenerations;

  /** `lifetimeMs`: how long an order's view lives after its last change (READ_MODEL_TTL_MS); readers may leave the default. */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly observers: ProjectionObservers = {},
    private readonly lifetimeMs: number = DEFAULT_READ_MODEL_LIFETIME_MS,
    private readonly now: () => number = Date.now,
  ) {
    redis.defineCommand("projectEvent", { numberOfKeys: 2, lua: applyScript });
    redis.defineCommand("liveOrderView", { numberOfKeys: 1, lua: viewScript });
    redis.defineCommand("liveOrderHistory", { numberOfKeys: 1, lua: historyScript });
    redis.defineCommand("liveOrderIds", { numberOfKeys: 1, lua: idsScript });
    redis.defineCommand("carryOrderOver", { numberOfKeys: 2, lua: carryOverScript });
    this.#redis = redis as ProjectionRedis;
    this.generations = new ReadModelGenerations(redis, keys, lifetimeMs, now);
  }

  /**
   * Applies one event; returns false when it was applied before. Live (no `rebuild`): to the live
   * generation and to the one a rebuild is writing, if any. For a rebuild: to its generation only.
   */
  async apply(topic: string, event: ProjectedEvent, rebuild?: RebuildClaim): Promise<boolean> {
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
      livePointerKey(this.keys),
      rebuildClaimKey(this.keys),
      keyBase(this.keys),
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
      orderId,
      customerId,
      rebuild?.owner ?? "",
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

  /**
   * For a rebuild: copies into its generation the events of order `orderId` that generation
   * `from` has and the rebuild's has not — events the log no longer holds — with the view fields
   * the rebuild's lacks; an order the replay did not meet at all keeps its old view whole. Returns
   * how many events were carried over.
   */
  async carryOver(rebuild: RebuildClaim, from: number, orderId: string): Promise<number> {
    return this.#redis.carryOrderOver(
      livePointerKey(this.keys),
      rebuildClaimKey(this.keys),
      keyBase(this.keys),
      rebuild.owner,
      String(from),
      String(rebuild.generation),
      orderId,
      statusEffectsJson,
      String(TERMINAL_RANK),
      String(this.lifetimeMs),
    );
  }

  /** The stored view of an order in the live generation, or undefined. */
  async view(orderId: string): Promise<Record<string, string> | undefined> {
    const flat = await this.#redis.liveOrderView(livePointerKey(this.keys), keyBase(this.keys), orderId);
    const view: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) view[flat[i] ?? ""] = flat[i + 1] ?? "";
    return view["order_id"] === undefined ? undefined : view;
  }

  /** The order's history, oldest first (ties broken by event id, which is time-ordered). */
  async history(orderId: string): Promise<HistoryEntry[]> {
    const raw = await this.#redis.liveOrderHistory(livePointerKey(this.keys), keyBase(this.keys), orderId);
    return raw
      .map((entry) => JSON.parse(entry) as HistoryEntry)
      .sort((a, b) => a.occurred_at.localeCompare(b.occurred_at) || a.event_id.localeCompare(b.event_id));
  }

  /** Order ids newest first, optionally of one customer, from `offset`. */
  ids(customerId: string | undefined, offset: number, count: number): Promise<string[]> {
    const index = customerId ? `orders:customer:${customerId}` : "orders";
    return this.#redis.liveOrderIds(livePointerKey(this.keys), keyBase(this.keys), index, String(offset), String(offset + count - 1));
  }
}
