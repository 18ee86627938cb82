/**
 * The admin API's core: inspect an order with its saga, list and replay dead letters, resolve
 * parked compensations, read and set stock, pause and resume a service's consumption, and rebuild
 * the order read model. It knows nothing about HTTP: it takes its dependencies from a factory,
 * speaks proto messages and throws ConnectError with a Code. It reuses the services' own stores
 * (order projection, saga store, stock store) rather than reading their keys itself, and audits
 * every change on orders.audit with the actor "admin:<actor>".
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { AuditRecordedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import {
  ParkedCompensationSchema,
  type SagaStateSchema,
  StockLevelSchema,
  type DeadLetter,
  type GetOrderDetailResponseSchema,
  type ParkedCompensation,
  type ReplayDeadLettersRequest,
  type ReplayDeadLettersResponseSchema,
  type ResolveParkedCompensationRequest,
  type SetStockRequest,
  type StockLevel,
} from "../../gen/orderflow/v1/admin_service_pb.ts";
import { catalog, sagaTopics } from "../../infra/topics.ts";
import { Headers, headerValue, newEventId } from "../../lib/codec/envelope.ts";
import type { Config } from "../../lib/config.ts";
import { setConsumptionPaused } from "../../lib/control.ts";
import type { Logger } from "../../lib/log.ts";
import { activeIds } from "../../lib/tracing.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { topicName, type Admin, type Kafka } from "../../lib/kafka/client.ts";
import { DlqHeaders, dlqTopicOf } from "../../lib/kafka/dlq.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { readToEnd, type ReadRecord } from "../../lib/kafka/read-to-end.ts";
import { StockStore, type StockLevel as StoredStockLevel } from "../inventory/stock.ts";
import type { SagaState as StoredSagaState } from "../orchestrator/saga.ts";
import { SagaStore, type ParkedRecord } from "../orchestrator/store.ts";
import { InvalidRequestError, createOrders } from "../order/orders.ts";
import { OrderProjection } from "../order/projection.ts";
import { rebuildProjection } from "../order/rebuild.ts";
import { deadLetterOf, positionOf, replayRecord, selectForReplay } from "./dead-letters.ts";

/** The services whose consumption an operator may pause. */
export const operatedServices: readonly string[] = ["order", "payment", "inventory", "notification", "orchestrator"];

const DEFAULT_DEAD_LETTER_LIMIT = 100;
const MAX_AUDIT_DETAIL = 2000;

/** What the admin core is built from (a service runtime has all of it). */
export interface AdminDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly publisher: Publisher;
  /** For a Kafka admin client per call (reading a DLQ or the log to its end needs the topics' offsets). */
  readonly kafka: Kafka;
  readonly now?: () => number;
  /** Longest a read of DLQs or of the log (rebuild) may take. */
  readonly readTimeoutMs?: number;
}

const paymentTaken = new Set<StoredSagaState["payment"]>(["charged", "refund_requested", "refunded"]);
const stockHeld = new Set<StoredSagaState["stock"]>(["reserved", "committed", "release_requested", "released"]);
const terminal = new Set([OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED]);

/**
 * Where a saga is, in one word for operators: VALIDATING, AWAITING_PAYMENT_AND_STOCK (or one of
 * them), COMPENSATION_PARKED, COMPENSATING, or the order's final status once nothing is pending.
 */
export function sagaStep(state: StoredSagaState): string {
  if (state.status === OrderStatus.PENDING) return "VALIDATING";
  if (!terminal.has(state.status)) {
    const waiting = [state.payment === "requested" ? "PAYMENT" : "", state.stock === "requested" ? "STOCK" : ""].filter(Boolean);
    return waiting.length === 0 ? "FINISHING" : `AWAITING_${waiting.join("_AND_")}`;
  }
  if (state.parked.length > 0) return "COMPENSATION_PARKED";
  if (Object.keys(state.pending).length > 0) return "COMPENSATING";
  return OrderStatus[state.status];
}

/**
 * The orchestrator's saga state as the API shows it. payment_done: the charge was taken (also when
 * refunded since); stock_reserved: the reservation succeeded (also when committed or released since).
 */
export function sagaStateOf(state: StoredSagaState): MessageInitShape<typeof SagaStateSchema> {
  return {
    step: sagaStep(state),
    paymentDone: paymentTaken.has(state.payment),
    stockReserved: stockHeld.has(state.stock),
    paymentId: state.paymentId ?? "",
    reservationId: state.reservationId ?? "",
    ...(state.deadlineMs === undefined ? {} : { deadline: timestampFromMs(state.deadlineMs) }),
  };
}

function stockLevelOf(level: StoredStockLevel): StockLevel {
  return create(StockLevelSchema, {
    sku: level.sku,
    available: BigInt(level.available),
    reserved: BigInt(level.reserved),
    committed: BigInt(level.committed),
    onHand: BigInt(level.onHand),
  });
}

function parkedOf(parked: ParkedRecord): ParkedCompensation {
  return create(ParkedCompensationSchema, {
    id: parked.id,
    orderId: parked.orderId,
    action: parked.action,
    attempts: parked.attempts,
    parkedAt: timestampFromMs(parked.parkedAtMs),
  });
}


/** A saga topic's name, or InvalidArgument naming `field`. */
function originTopic(topic: string, field: string): string {
  if (!sagaTopics.some((spec) => spec.name === topic)) {
    throw new InvalidRequestError([{ field, message: `${topic} is not a topic of the catalog (give the origin topic, for example orders.created)` }]);
  }
  return topic;
}

/** Builds the admin core over its dependencies. */
export function createAdmin(deps: AdminDeps) {
  const { config, log, redis, keys, publisher, kafka } = deps;
  const now = deps.now ?? Date.now;
  const readTimeoutMs = deps.readTimeoutMs ?? 60_000;
  const projection = new OrderProjection(redis, keys, {}, config.redisLifetimes.readModelMs);
  // The order core for its read functions; the admin API places no orders, so it needs no tokenizer.
  const orders = createOrders({
    config,
    redis,
    keys,
    publisher,
    projection,
    log,
    tokenizer: { tokenize: () => Promise.reject(new Error("the admin API places no orders")) },
  });
  const sagas = new SagaStore(redis, keys, config.redisLifetimes.dedupMs);
  const stock = new StockStore(redis, keys, config.redisLifetimes.dedupMs);
  /**
   * DLQ positions ("orders.created.dlq/0/42") replayed already, by replay time; a repeated replay
   * skips them. A position is forgotten REDIS_DEDUP_TTL_MS after its replay: longer than its DLQ
   * keeps the record (so it can no longer be replayed by then).
   */
  const replayedKey = keys("admin", "replayed");
  const replayLifetimeMs = config.redisLifetimes.dedupMs;

  /** Publishes one admin action on orders.audit; resolves once the broker acknowledged it. */
  async function audit(entry: { actor: string; action: string; target: string; detail: string; orderId?: string }): Promise<void> {
    const orderId = entry.orderId ?? "";
    await publisher.publish(
      "orders.audit",
      AuditRecordedSchema,
      {
        auditId: newEventId(),
        orderId,
        actor: `admin:${entry.actor}`,
        action: entry.action,
        target: entry.target,
        detail: entry.detail.slice(0, MAX_AUDIT_DETAIL),
        traceId: activeIds().traceId ?? "",
        occurredAt: timestampFromMs(now()),
      },
      { orderId, key: orderId || entry.target },
    );
  }

  /**
   * Runs `work` with an admin client connected for it alone. None stays open between calls: an
   * admin request in flight across a broker restart can abort librdkafka (see ARCHITECTURE.md), so
   * the window is kept to the calls that need one.
   */
  async function withKafkaAdmin<T>(work: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await work(admin);
    } finally {
      await admin.disconnect();
    }
  }

  /** Every record of the given DLQs (catalog names) up to their current end. */
  async function readDeadLetters(dlqTopics: readonly string[], onRecord: (record: ReadRecord) => void): Promise<void> {
    await withKafkaAdmin((admin) => readToEnd(config, admin, dlqTopics.map((topic) => topicName(config, topic)), onRecord, readTimeoutMs));
  }

  return {
    /** The order from the read model, its history, and the orchestrator's saga (absent when it has none). */
    async getOrderDetail(orderId: string): Promise<MessageInitShape<typeof GetOrderDetailResponseSchema>> {
      const order = await orders.getOrder(orderId);
      const events = await orders.listOrderEvents(orderId);
      const { saga } = await sagas.load(orderId);
      return { order, events, ...(saga === undefined ? {} : { saga: sagaStateOf(saga.state) }) };
    },

    /** Dead letters of one origin topic's DLQ, or of every DLQ, oldest first per partition, at most `limit` (0 = 100). */
    async listDeadLetters(topic: string, limit: number): Promise<DeadLetter[]> {
      const dlqTopics = topic === "" ? catalog.filter((spec) => spec.kind === "dead-letter").map((spec) => spec.name) : [dlqTopicOf(originTopic(topic, "topic"))];
      const max = limit > 0 ? limit : DEFAULT_DEAD_LETTER_LIMIT;
      const found: DeadLetter[] = [];
      await readDeadLetters(dlqTopics, (record) => {
        if (found.length < max) found.push(deadLetterOf(record, config.topicPrefix));
      });
      return found;
    },

    /**
     * Sends the named dead letters of one topic's DLQ back to where they came from, each once: a
     * position is claimed in Redis before it is sent (and released if the send fails), so a
     * repeated or concurrent replay skips it. Each replay is audited.
     */
    async replayDeadLetters(request: ReplayDeadLettersRequest): Promise<MessageInitShape<typeof ReplayDeadLettersResponseSchema>> {
      const dlqTopic = dlqTopicOf(originTopic(request.topic, "topic"));
      const records: ReadRecord[] = [];
      await readDeadLetters([dlqTopic], (record) => void records.push(record));
      const chosen = selectForReplay(records, request, dlqTopic);
      const replayed: DeadLetter[] = [];
      let skipped = 0;
      for (const record of chosen) {
        const position = positionOf(record, config.topicPrefix);
        const replayedAtMs = now();
        if ((await redis.zadd(replayedKey, "NX", replayedAtMs, position)) === 0) {
          skipped += 1;
          continue;
        }
        const origin = headerValue(record.headers, DlqHeaders.originTopic) ?? topicName(config, request.topic);
        try {
          await publisher.send(origin, replayRecord(record, position, request.actor));
        } catch (err) {
          await redis.zrem(replayedKey, position);
          throw err;
        }
        await redis.multi().zremrangebyscore(replayedKey, "-inf", `(${replayedAtMs - replayLifetimeMs}`).pexpire(replayedKey, replayLifetimeMs).exec();
        const letter = deadLetterOf(record, config.topicPrefix);
        replayed.push(letter);
        await audit({
          actor: request.actor,
          action: "dlq_replayed",
          target: position,
          detail: `replayed to ${letter.originTopic} (${letter.errorClass}: ${letter.errorMessage})`,
          orderId: headerValue(record.headers, Headers.orderId) ?? "",
        });
      }
      log.info({ topic: dlqTopic, chosen: chosen.length, replayed: replayed.length, skipped, actor: request.actor }, "dead letters replayed");
      return { replayed: replayed.length, records: replayed };
    },

    async listParkedCompensations(): Promise<ParkedCompensation[]> {
      return (await sagas.listParked()).map(parkedOf);
    },

    /** Retries a parked compensation (the orchestrator sends it again) or marks it handled by hand. */
    async resolveParkedCompensation(request: ResolveParkedCompensationRequest): Promise<ParkedCompensation> {
      const parked = await sagas.resolveParked(request.id, request.retry, now());
      if (parked === undefined) throw new ConnectError(`no parked compensation ${request.id} (unknown, or resolved already)`, Code.NotFound);
      const how = request.retry ? "retried" : "handled by hand";
      await audit({
        actor: request.actor,
        action: "compensation_resolved",
        target: parked.id,
        detail: `${parked.action} ${how}${request.note === "" ? "" : `: ${request.note}`}`,
        orderId: parked.orderId,
      });
      log.info({ id: parked.id, orderId: parked.orderId, action: parked.action, retry: request.retry, actor: request.actor }, "parked compensation resolved");
      return parkedOf(parked);
    },

    /** Stock of one SKU (NotFound when unknown), or of every SKU when `sku` is empty. */
    async getStock(sku: string): Promise<StockLevel[]> {
      if (sku === "") return (await stock.listStock()).map(stockLevelOf);
      const level = await stock.getStock(sku);
      if (level === undefined) throw new ConnectError(`unknown sku ${sku}`, Code.NotFound);
      return [stockLevelOf(level)];
    },

    /** Sets the available quantity of a known SKU (the same function as `orderflow stock set`). */
    async setStock(request: SetStockRequest): Promise<StockLevel> {
      if (request.available > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidRequestError([{ field: "available", message: "too large" }]);
      const before = await stock.getStock(request.sku);
      if (before === undefined) throw new ConnectError(`unknown sku ${request.sku}`, Code.NotFound);
      const after = await stock.setStock(request.sku, Number(request.available));
      await audit({ actor: request.actor, action: "stock_set", target: request.sku, detail: `available ${before.available} -> ${after.available}` });
      log.info({ sku: request.sku, before: before.available, after: after.available, actor: request.actor }, "stock set");
      return stockLevelOf(after);
    },

    /** Pauses (or resumes) the consumers of every process of `service`; returns the new state. */
    async setConsumption(service: string, paused: boolean, actor: string): Promise<boolean> {
      if (!operatedServices.includes(service)) {
        throw new InvalidRequestError([{ field: "service", message: `unknown service ${service}; one of ${operatedServices.join(", ")}` }]);
      }
      await setConsumptionPaused(redis, keys, service, paused, new Date(now()));
      await audit({ actor, action: paused ? "consumption_paused" : "consumption_resumed", target: service, detail: `${service} ${paused ? "paused" : "resumed"}` });
      log.warn({ service, paused, actor }, paused ? "consumption paused" : "consumption resumed");
      return paused;
    },

    /**
     * Rebuilds the order read model from the log into a new generation and swaps it in, keeping
     * orders the log no longer has (the same function as `orderflow orders rebuild`); refused
     * (FailedPrecondition) while another rebuild runs.
     */
    async rebuildProjection(actor: string): Promise<{ eventsApplied: bigint; orders: bigint }> {
      const result = await withKafkaAdmin((admin) => rebuildProjection({ admin, config, projection }, readTimeoutMs));
      const detail = `${result.orders} order(s) from ${result.eventsApplied} event(s); ${result.carriedOver} order(s) kept events the log no longer has`;
      await audit({ actor, action: "projection_rebuilt", target: "order read model", detail });
      log.info({ ...result, actor }, "order read model rebuilt");
      return { eventsApplied: BigInt(result.eventsApplied), orders: BigInt(result.orders) };
    },
  };
}

/** The admin core. */
export type AdminCore = ReturnType<typeof createAdmin>;
