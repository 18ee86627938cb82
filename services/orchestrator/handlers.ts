/**
 * The orchestrator's Kafka shell around the pure saga: turns consumed records into saga inputs,
 * stores each decision with its effects (SagaStore), then carries the effects out — into the
 * consumer's transaction for consumed records, straight to the broker for the timer that fires
 * deadlines and compensation retries — and parks compensations that keep failing.
 */
import type { DecodedRecord } from "../../lib/codec/codec.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { every } from "../../lib/every.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { OrderflowAttributes, activeIds, activeTraceHeaders, traceRequest } from "../../lib/tracing.ts";
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
import { sagaOutcomeOf, type SagaOutcome } from "./observability.ts";
import { decide, type CatalogPrice, type SagaInput } from "./saga.ts";
import type { OrchestratorSettings } from "./settings.ts";
import { SagaStore, entryCreatedMs, outboxMessage, toOutbox, type OutboxEntry, type StoredSaga } from "./store.ts";

/** The timer republishes an outbox only when the handler that wrote it had this long to do so. */
const OUTBOX_RECOVERY_AFTER_MS = 5_000;
/** Longest a flush may hold its order's lock (a crashed flusher's lock lapses after it). */
const FLUSH_LOCK_MS = 10_000;

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
  "inventory.committed",
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
    case "inventory.committed":
      return { kind: "stock-committed" };
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
  const store = new SagaStore(redis, keys);

  /** Catalog prices of the SKUs an order names (absent = unknown SKU). */
  async function prices(input: SagaInput): Promise<Map<string, CatalogPrice>> {
    const found = new Map<string, CatalogPrice>();
    if (input.kind !== "order-created") return found;
    for (const item of input.event.items) {
      const product = await redis.hgetall(keys("product", item.productId));
      if (product["price_minor"] !== undefined && product["currency"] !== undefined) {
        found.set(item.productId, { currency: product["currency"], priceMinor: BigInt(product["price_minor"]) });
      }
    }
    return found;
  }

  /** Carries out one outbox entry through `out`: parks it, or publishes it under its own event id. */
  async function carryOut(orderId: string, entry: OutboxEntry, out: Sink): Promise<void> {
    if (entry.kind === "park") {
      await store.park(orderId, entry, now());
      log.error({ orderId, compensation: entry.compensation, attempts: entry.attempts }, "compensation parked");
      return;
    }
    const { schema, message } = outboxMessage(entry);
    await out.send(
      topicName(config, entry.topic),
      encodeRecord(schema, message, { key: entry.key, orderId, producer: config.service, encoding: config.encoding, eventId: entry.id }),
    );
  }

  /**
   * Removes carried-out entries from the saga's outbox, and counts the saga outcomes among the
   * entries this call removed (exactly one caller removes each; see observability.ts).
   */
  async function removeFromOutbox(orderId: string, ids: ReadonlySet<string>): Promise<void> {
    let outcomes: SagaOutcome[] = [];
    await store.update(orderId, (current) => {
      outcomes = [];
      if (current === undefined || !current.outbox.some((entry) => ids.has(entry.id))) return undefined;
      outcomes = current.outbox.filter((entry) => ids.has(entry.id)).flatMap((entry) => sagaOutcomeOf(entry, current.state) ?? []);
      return { ...current, outbox: current.outbox.filter((entry) => !ids.has(entry.id)) };
    });
    for (const outcome of outcomes) deps.sagaOutcomes?.inc({ ...outcome });
  }

  /**
   * Publishes and parks what the saga's outbox holds, then removes what was done, until it is
   * empty. One flusher per order at a time (answers for one order arrive on several topics at
   * once); a caller that finds the lock taken waits for it, so its entries are not left behind.
   * With `olderThanMs`, only an outbox whose first entry is at least that old (a crash's leftovers).
   */
  async function flush(orderId: string, olderThanMs?: number): Promise<void> {
    const deadline = now() + FLUSH_LOCK_MS;
    while (!(await store.lockFlush(orderId, FLUSH_LOCK_MS))) {
      if (olderThanMs !== undefined || now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    try {
      for (;;) {
        const { saga } = await store.load(orderId);
        const first = saga?.outbox[0];
        if (saga === undefined || first === undefined) return;
        if (olderThanMs !== undefined && now() - entryCreatedMs(first) < olderThanMs) return;
        for (const entry of saga.outbox) await carryOut(orderId, entry, publisher);
        await removeFromOutbox(orderId, new Set(saga.outbox.map((entry) => entry.id)));
      }
    } finally {
      await store.unlockFlush(orderId);
    }
  }

  /**
   * Applies one input to one saga under compare-and-set, idempotent by event id. Returns the saga
   * and the outbox entries this input added — or, when the input was applied before (a redelivery
   * after an aborted transaction), every entry still waiting, so its effects go out again.
   */
  async function decideAndStore(orderId: string, input: SagaInput, eventId?: string): Promise<{ saga: StoredSaga | undefined; due: readonly OutboxEntry[] }> {
    const products = await prices(input);
    let added: readonly OutboxEntry[] = [];
    let replayed = false;
    const saga = await store.update(orderId, (current) => {
      added = [];
      replayed = eventId !== undefined && current?.seen.includes(eventId) === true;
      if (replayed) return undefined;
      const decision = decide(current?.state, input, {
        nowMs: now(),
        products,
        stepTimeoutMs: settings.stepTimeoutMs,
        maxOrderMinor: settings.maxOrderMinor,
        compensationRetryMs: settings.compensationRetryMs,
        compensationMaxAttempts: settings.compensationMaxAttempts,
        ...activeIds(),
      });
      if (decision.state === undefined) return undefined;
      added = toOutbox(decision.effects);
      return {
        state: decision.state,
        seen: SagaStore.seenWith(current?.seen ?? [], eventId),
        outbox: [...(current?.outbox ?? []), ...added],
        trace: current?.trace ?? activeTraceHeaders(),
      };
    });
    return { saga, due: replayed ? (saga?.outbox ?? []) : added };
  }

  /** Applies a timer input and publishes its effects at once (no consumer transaction to join). */
  async function apply(orderId: string, input: SagaInput): Promise<StoredSaga | undefined> {
    const { saga } = await decideAndStore(orderId, input);
    await flush(orderId);
    return saga;
  }

  /**
   * One timer round: fire due sagas, finish outboxes a crash left behind. Each order is on its
   * own: one that fails is logged and retried next round without holding up the others.
   */
  async function tick(): Promise<void> {
    const each = async (orderIds: readonly string[], work: (orderId: string) => Promise<unknown>) => {
      for (const orderId of orderIds) {
        await work(orderId).catch((err: unknown) => log.warn({ orderId, err: messageOf(err) }, "saga timer step failed"));
      }
    };
    const fire = async (orderId: string) => {
      const { saga } = await store.load(orderId);
      await traceRequest("saga timer", "internal", saga?.trace, { [OrderflowAttributes.orderId]: orderId }, () => apply(orderId, { kind: "tick" }));
    };
    await each(await store.dueOrders(now(), 100), fire);
    await each(await store.ordersWithOutbox(now() - OUTBOX_RECOVERY_AFTER_MS, 100), (orderId) => flush(orderId, OUTBOX_RECOVERY_AFTER_MS));
  }

  return {
    store,
    apply,
    flush,
    tick,
    /**
     * The consumer handler: the decision is stored first, its effects go into the consumer's
     * transaction, and they leave the outbox only once that transaction committed.
     */
    async handle(record: DecodedRecord, context: Pick<RecordContext, "topic" | "out" | "afterCommit">): Promise<StoredSaga | undefined> {
      const base = context.topic.slice(config.topicPrefix.length);
      const input = inputOf(base, record);
      const orderId = record.envelope.orderId || (record.message as unknown as { orderId: string }).orderId;
      const { saga, due } = await decideAndStore(orderId, input, record.envelope.eventId);
      for (const entry of due) await carryOut(orderId, entry, context.out);
      if (due.length > 0) context.afterCommit(() => removeFromOutbox(orderId, new Set(due.map((entry) => entry.id))));
      return saga;
    },
    /** Runs tick() every settings.tickMs until the returned function is called. */
    startTimer: () => every(settings.tickMs, tick, log, "saga timer round"),
  };
}
