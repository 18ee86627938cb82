/**
 * The orchestrator's Kafka shell around the pure saga: turns consumed records into saga inputs,
 * stores each decision with its effects (SagaStore), then carries the effects out — into the
 * consumer's transaction for consumed records, straight to the broker for the timer that fires
 * deadlines and compensation retries — and parks compensations that keep failing.
 *
 * Redis work per consumed record: one script call (the decision, checked against the version it
 * was decided on) when the saga and the catalog prices are in memory; a saga not in memory is read
 * first (not for orders.created, which expects none), and a version conflict hands back the
 * stored saga for one more decision. Entries leave the outbox after the commit, in one pipeline
 * for all the records of that commit.
 */
import type { DecodedRecord } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import { TransientError, messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { every } from "../../lib/every.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { OrderflowAttributes, activeTraceHeaders, traceRequest } from "../../lib/tracing.ts";
import type { RecordContext } from "../../lib/kafka/consumer-runner.ts";
import type { Publisher, Sink } from "../../lib/kafka/publisher.ts";
import type {
  InventoryReleased,
  InventoryReservationFailed,
  InventoryReserved,
  OrderCancelRequested,
  OrderCreated,
  PaymentCompleted,
  PaymentFailed,
  PaymentRefunded,
} from "../../gen/orderflow/v1/events_pb.ts";
import type { Counter } from "prom-client";
import { CatalogCache } from "./catalog.ts";
import { entryCreatedMs, outboxRecord, toOutbox, type OutboxEntry } from "./outbox.ts";
import { RecentSagas, keyedQueue } from "./recent.ts";
import { decide, type CatalogPrice, type SagaInput } from "./saga.ts";
import type { OrchestratorSettings } from "./settings.ts";
import { SagaStore, absent, type StoredSaga, type Versioned } from "./store.ts";

/** The timer republishes an outbox entry only when the handler that wrote it had this long to do so. */
const OUTBOX_RECOVERY_AFTER_MS = 5_000;
/** Longest a recovery may hold its order's lock (a crashed recoverer's lock lapses after it). */
const FLUSH_LOCK_MS = 10_000;
/** Decisions tried on one input before giving up (each failed try means someone else wrote the saga). */
const DECIDE_ATTEMPTS = 20;

/** The catalog topics the orchestrator consumes. */
export const orchestratorTopics = [
  "orders.created",
  "orders.cancel.requested",
  "payments.completed",
  "payments.failed",
  "payments.refunded",
  "inventory.reserved",
  "inventory.failed",
  "inventory.released",
] as const;

/** Maps a record of a consumed topic to the saga input it is. */
export function inputOf(topic: string, record: DecodedRecord): SagaInput {
  const message = record.message as unknown;
  switch (topic) {
    case "orders.created":
      return { kind: "order-created", event: message as OrderCreated };
    case "orders.cancel.requested":
      return { kind: "cancel-requested", event: message as OrderCancelRequested };
    case "payments.completed":
      return { kind: "payment-completed", event: message as PaymentCompleted };
    case "payments.failed":
      return { kind: "payment-failed", event: message as PaymentFailed };
    case "payments.refunded":
      return { kind: "payment-refunded", event: message as PaymentRefunded };
    case "inventory.reserved":
      return { kind: "stock-reserved", event: message as InventoryReserved };
    case "inventory.failed":
      return { kind: "stock-short", event: message as InventoryReservationFailed };
    case "inventory.released":
      return { kind: "stock-released", event: message as InventoryReleased };
    default:
      throw new Error(`the orchestrator does not consume ${topic}`);
  }
}

export interface OrchestratorDeps {
  readonly config: Config;
  readonly settings: OrchestratorSettings;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly publisher: Publisher;
  readonly log: Logger;
  readonly now?: () => number;
  /** Counts terminal records once they are committed (observability.ts). */
  readonly sagaOutcomes?: Pick<Counter<"outcome" | "reason">, "inc">;
}

export function createOrchestrator(deps: OrchestratorDeps) {
  const { config, settings, redis, keys, publisher, log } = deps;
  const now = deps.now ?? Date.now;
  const store = new SagaStore(redis, keys, config.redisLifetimes.dedupMs);
  const recent = new RecentSagas(settings.sagaCacheEntries);
  const catalog = new CatalogCache(redis, keys, { maxAgeMs: settings.catalogMaxAgeMs, now });
  const serially = keyedQueue();

  /** Catalog prices of the SKUs an order names (absent = unknown SKU); none needed for other inputs. */
  function prices(input: SagaInput): Promise<Map<string, CatalogPrice>> {
    return input.kind === "order-created" ? catalog.prices(input.event.items.map((item) => item.productId)) : Promise.resolve(new Map<string, CatalogPrice>());
  }

  /** The saga as this process last stored or read it; read from Redis when not in memory. */
  async function known(orderId: string, input: SagaInput): Promise<Versioned> {
    const held = recent.get(orderId);
    if (held !== undefined) return held;
    // An order's first record expects no saga; if there is one, the write says so and hands it back.
    if (input.kind === "order-created") return absent;
    const loaded = await store.load(orderId);
    recent.remember(orderId, loaded);
    return loaded;
  }

  /** Carries out one outbox entry through `out`: parks it, or sends its stored bytes under its own event id. */
  async function carryOut(orderId: string, entry: OutboxEntry, out: Sink): Promise<void> {
    if (entry.kind === "park") {
      await store.park(orderId, entry, now());
      log.error({ orderId, compensation: entry.compensation, attempts: entry.attempts }, "compensation parked");
      return;
    }
    await out.send(topicName(config, entry.topic), outboxRecord(entry, orderId, config.service));
  }

  /** Takes carried-out entries off the outbox and counts the saga outcomes among those this call removed. */
  async function removeFromOutbox(orderId: string, entries: readonly OutboxEntry[]): Promise<void> {
    const removed = await store.removeFromOutbox(orderId, entries.map((entry) => entry.id));
    for (const entry of entries) {
      if (entry.kind === "publish" && entry.outcome !== undefined && removed.has(entry.id)) deps.sagaOutcomes?.inc({ ...entry.outcome });
    }
  }

  /**
   * Applies one input to one saga, idempotent by event id, and returns the saga and the outbox
   * entries to carry out: those this input added — or, when it was applied before (a redelivery
   * after an aborted transaction), those it added that are still waiting, so they go out again.
   * Decides on the copy in memory and stores under its version; on a conflict, decides again on
   * what the store handed back.
   */
  async function decideAndStore(orderId: string, input: SagaInput, eventId?: string): Promise<{ saga: StoredSaga | undefined; due: readonly OutboxEntry[] }> {
    const products = await prices(input);
    let current = await known(orderId, input);
    for (let attempt = 0; attempt < DECIDE_ATTEMPTS; attempt += 1) {
      const saga = current.saga;
      const early = current.earlyCancel;
      const seen = saga?.seen ?? early?.seen ?? [];
      if (eventId !== undefined && seen.includes(eventId)) {
        return { saga, due: saga === undefined ? [] : (await store.outbox(orderId)).filter((entry) => entry.cause === eventId) };
      }
      // The order's first record takes along a cancel kept before it arrived.
      const decision = decide(saga?.state, early !== undefined && input.kind === "order-created" ? { ...input, earlyCancel: early.cancel } : input, {
        nowMs: now(),
        products,
        stepTimeoutMs: settings.stepTimeoutMs,
        maxOrderMinor: settings.maxOrderMinor,
        compensationRetryMs: settings.compensationRetryMs,
        compensationMaxAttempts: settings.compensationMaxAttempts,
      });
      if (decision.state === undefined && decision.earlyCancel !== undefined) {
        // A cancel before its order: kept (the client was answered 202), applied when the order arrives.
        const result = await store.keepEarlyCancel(orderId, current.version, { cancel: decision.earlyCancel, seen: SagaStore.seenWith(seen, eventId) });
        if (result.written) {
          recent.remember(orderId, result.stored);
          log.info({ orderId }, "cancel kept until its order arrives");
          return { saga: undefined, due: [] };
        }
        current = result.current;
        recent.remember(orderId, current);
        continue;
      }
      // Nothing changed (an unknown order, a duplicate answer): nothing to store.
      if (decision.state === undefined || (decision.state === saga?.state && decision.effects.length === 0)) return { saga, due: [] };
      const added = toOutbox(decision.effects, { encoding: config.encoding, state: decision.state, ...(eventId === undefined ? {} : { cause: eventId }) });
      const next: StoredSaga = { state: decision.state, seen: SagaStore.seenWith(seen, eventId), trace: saga?.trace ?? activeTraceHeaders() };
      const result = await store.write(orderId, current.version, next, added);
      if (result.written) {
        recent.remember(orderId, result.stored);
        return { saga: next, due: added };
      }
      current = result.current;
      recent.remember(orderId, current);
    }
    throw new TransientError(`saga ${orderId} kept changing under us`);
  }

  /** Applies a timer input and publishes its effects at once (no consumer transaction to join). */
  function apply(orderId: string, input: SagaInput): Promise<StoredSaga | undefined> {
    return serially(orderId, async () => {
      const { saga, due } = await decideAndStore(orderId, input);
      for (const entry of due) await carryOut(orderId, entry, publisher);
      if (due.length > 0) await removeFromOutbox(orderId, due);
      return saga;
    });
  }

  /**
   * Carries out the outbox entries of an order decided at least OUTBOX_RECOVERY_AFTER_MS ago (a
   * crash's leftovers), under a lock so that two timers do not both publish them.
   */
  async function recover(orderId: string): Promise<void> {
    if (!(await store.lockFlush(orderId, FLUSH_LOCK_MS))) return;
    try {
      const left = (await store.outbox(orderId)).filter((entry) => now() - entryCreatedMs(entry) >= OUTBOX_RECOVERY_AFTER_MS);
      for (const entry of left) await carryOut(orderId, entry, publisher);
      if (left.length > 0) await removeFromOutbox(orderId, left);
    } finally {
      await store.unlockFlush(orderId);
    }
  }

  /**
   * One timer round: fire due sagas, finish outboxes a crash left behind. Each order is on its
   * own: one that fails is logged and retried next round without holding up the others.
   */
  /** Set while an operator has the service paused: timer rounds then change nothing. */
  let timerPaused = false;

  async function tick(): Promise<void> {
    const each = async (orderIds: readonly string[], work: (orderId: string) => Promise<unknown>) => {
      for (const orderId of orderIds) {
        await work(orderId).catch((err: unknown) => log.warn({ orderId, err: messageOf(err) }, "saga timer step failed"));
      }
    };
    const fire = async (orderId: string) => {
      const { saga } = await known(orderId, { kind: "tick" });
      await traceRequest("saga timer", "internal", saga?.trace, { [OrderflowAttributes.orderId]: orderId }, () => apply(orderId, { kind: "tick" }));
    };
    await each(await store.dueOrders(now(), 100), fire);
    await each(await store.ordersWithOutbox(now() - OUTBOX_RECOVERY_AFTER_MS, 100), recover);
  }

  return {
    store,
    catalog,
    tick,
    /**
     * The consumer handler: the decision is stored first, its effects go into the consumer's
     * transaction, and they leave the outbox only once that transaction committed.
     */
    handle(record: DecodedRecord, context: Pick<RecordContext, "topic" | "out" | "afterCommit">): Promise<StoredSaga | undefined> {
      const base = context.topic.slice(config.topicPrefix.length);
      const input = inputOf(base, record);
      const orderId = record.envelope.orderId || (record.message as unknown as { orderId: string }).orderId;
      return serially(orderId, async () => {
        const { saga, due } = await decideAndStore(orderId, input, record.envelope.eventId);
        for (const entry of due) await carryOut(orderId, entry, context.out);
        if (due.length > 0) context.afterCommit(() => removeFromOutbox(orderId, due));
        return saga;
      });
    },
    /** Runs tick() every settings.tickMs and the catalog check every settings.catalogCheckMs, until the returned function is called. */
    /** While paused (an operator's pause of the service), timer rounds do nothing. */
    setPaused(paused: boolean): void {
      timerPaused = paused;
    },
    startTimer(): () => Promise<void> {
      const round = () => (timerPaused ? Promise.resolve() : tick());
      const stops = [every(settings.tickMs, round, log, "saga timer round"), every(settings.catalogCheckMs, () => catalog.check(), log, "catalog version check")];
      return async () => {
        await Promise.all(stops.map((stop) => stop()));
      };
    },
  };
}
