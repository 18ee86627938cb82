/**
 * The consumer runner every service uses. For each record, in partition order: decode and
 * validate (unreadable → DLQ at once), call the handler, retry retriable failures in-process with
 * exponential backoff and jitter up to a bound, then dead-letter — except an outage (Redis or a
 * peer unreachable), which is waited out without giving up the record. Two ways to deliver:
 *
 * - transactional (services that consume, change state and produce): the outputs of a batch of
 *   records, their dead letters and their offsets commit in one Kafka transaction — when a fetched
 *   batch is done and no other is being handled, and at the latest every N records or T ms. A failed commit aborts, and the consumer is rewound to the first record of each
 *   partition in that transaction; handlers are idempotent by business key, so the redo produces
 *   the same outputs and no second effect.
 * - at-least-once (projections, which produce nothing): the offset is stored only after the record
 *   was handled or dead-lettered.
 *
 * Stops gracefully: the record in hand finishes, an open transaction commits.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import type { Span } from "@opentelemetry/api";
import { ExponentialBackoff, handleWhen, retry, type RetryPolicy } from "cockatiel";
import type { Config } from "../config.ts";
import { OrderflowError, PoisonRecordError, errorClassOf, isOutage, isRetriable, messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import { decodeRecord, type DecodedRecord } from "../codec/codec.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import { createConsumer, type Consumer, type Kafka } from "./client.ts";
import { MessagingAttributes, OrderflowAttributes, traceProcess } from "../tracing.ts";
import { deadLetter, dlqTopicOf, type FailedRecord } from "./dlq.ts";
import type { Publisher, Sink } from "./publisher.ts";
import { TransactionalOutput, type TransactionSettings } from "./transactions.ts";
import { StallWatchdog, type StallReport } from "./watchdog.ts";

/** Where a record came from and how often it has been tried, for the handler. */
export interface RecordContext {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** 1 on the first try. */
  readonly attempt: number;
  readonly log: Logger;
  /** Where the record's outputs go: into the consumer's transaction, or straight to the broker. */
  readonly out: Sink;
  /** Runs `effect` once the outputs are committed (at once when not transactional). */
  afterCommit(effect: () => Promise<void>): void;
}

export type RecordHandler = (record: DecodedRecord, context: RecordContext) => Promise<void>;

/** A topic to consume (its actual name) and the value types it may carry. */
export interface Subscription {
  readonly topic: string;
  readonly valueTypes: readonly DescMessage[];
}

/** What happened to one record; observers count these (metrics, tests). */
export type Outcome = "handled" | "dead-lettered";

export interface ConsumerRunnerOptions {
  readonly kafka: Kafka;
  readonly config: Config;
  readonly log: Logger;
  readonly groupId: string;
  readonly subscriptions: readonly Subscription[];
  readonly handler: RecordHandler;
  /** Produces outputs and dead letters of an at-least-once runner. */
  readonly publisher: Publisher;
  /** Makes the runner transactional: the id must be stable per instance (a restart fences its predecessor). */
  readonly transactional?: { readonly transactionalId: string; readonly settings: TransactionSettings };
  readonly onOutcome?: (outcome: Outcome, record: FailedRecord, error?: unknown) => void;
  /** How often the watchdog measures lag; 0 turns it off. */
  readonly watchdogIntervalMs?: number;
}

/** The runner's state for health checks. */
export interface RunnerHealth {
  readonly running: boolean;
  readonly assignedPartitions: number;
  readonly stall: StallReport;
}

const ASSIGN = -175;
const REVOKE = -174;

interface RawMessage {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
  readonly headers?: RawHeaders;
}

/** The client underneath the KafkaJS-style consumer, for what the wrapper does not expose. */
interface LocalConsumer {
  assignments(): { topic: string; partition: number }[];
  position(partitions: { topic: string; partition: number }[]): { topic: string; partition: number; offset?: number }[];
  getWatermarkOffsets(topic: string, partition: number): { highOffset: number; lowOffset: number };
}

/**
 * Batches of several partitions inside one transaction at once (shared), and commits or aborts
 * that must have it to themselves (exclusive): an exclusive step waits until every batch inside
 * has left, and keeps new ones out until it is done. A batch leaves before it asks for one.
 */
class Gate {
  #inside = 0;
  #emptied: (() => void)[] = [];
  #closing: Promise<void> | undefined;

  async enter(): Promise<void> {
    while (this.#closing !== undefined) await this.#closing;
    this.#inside += 1;
  }

  /** No batch inside and no exclusive step running or waiting. */
  get idle(): boolean {
    return this.#inside === 0 && this.#closing === undefined;
  }

  leave(): void {
    this.#inside -= 1;
    if (this.#inside === 0) for (const resolve of this.#emptied.splice(0)) resolve();
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.#closing !== undefined) await this.#closing;
    let done: () => void = () => undefined;
    this.#closing = new Promise<void>((resolve) => (done = resolve));
    try {
      if (this.#inside > 0) await new Promise<void>((resolve) => this.#emptied.push(resolve));
      return await work();
    } finally {
      this.#closing = undefined;
      done();
    }
  }
}

/** The record was not finished because the runner is stopping; it is neither handled nor dead-lettered. */
class Abandoned extends OrderflowError {
  readonly retriable = false;
  readonly errorClass = "abandoned";
}

/**
 * A failed attempt already put outputs into the transaction: retrying or dead-lettering on top of
 * them would publish twice, so the transaction is aborted and the record read again.
 */
class Redo extends OrderflowError {
  readonly retriable = false;
  readonly errorClass = "redo";
}

/** What #handleRecord needs of the delivery mode. */
interface Delivery {
  readonly out: Sink;
  afterCommit(effect: () => Promise<void>): void;
  /** False once the record's current attempt has produced something that cannot be taken back. */
  clean(): boolean;
  /** Called before an outage is waited out (a transactional runner commits the records done so far). */
  beforeWaiting(): Promise<void>;
}

interface BatchPayload {
  readonly batch: { readonly topic: string; readonly partition: number; readonly messages: readonly RawMessage[] };
  resolveOffset(offset: string): void;
  isStale(): boolean;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one consumer group member until stopped. */
export class ConsumerRunner {
  readonly #options: ConsumerRunnerOptions;
  readonly #consumer: Consumer;
  readonly #watchdog: StallWatchdog;
  readonly #accepted: ReadonlyMap<string, readonly DescMessage[]>;
  /** Bounded retries with exponential backoff and jitter, for retriable handler errors; one per runner. */
  readonly #retry: RetryPolicy;
  readonly #tx: TransactionalOutput | undefined;
  /** Lets batches share the open transaction and commits or aborts wait for them. */
  readonly #gate = new Gate();
  #assigned = 0;
  #running = false;
  /** Set by an operator (admin "pause consumption"); partitions assigned meanwhile stay paused too. */
  #paused = false;
  /** Offset of the record being handled, per partition ("topic/partition"). */
  readonly #inHand = new Map<string, number>();
  #timers: NodeJS.Timeout[] = [];

  constructor(options: ConsumerRunnerOptions) {
    this.#options = options;
    this.#accepted = new Map(options.subscriptions.map((s) => [s.topic, s.valueTypes]));
    this.#retry = retry(handleWhen(isRetriable), {
      maxAttempts: options.config.consumer.maxAttempts - 1,
      backoff: new ExponentialBackoff({
        initialDelay: options.config.consumer.retryInitialDelayMs,
        maxDelay: options.config.consumer.retryMaxDelayMs,
      }),
    });
    this.#consumer = createConsumer(options.kafka, options.config, options.groupId, {
      rebalance_cb: (err: { code: number }, assignment: readonly { topic: string; partition: number }[]) => this.#onRebalance(err.code, assignment),
      ...(options.transactional === undefined ? {} : { "enable.auto.commit": false }),
    });
    if (options.transactional !== undefined) {
      this.#tx = new TransactionalOutput({
        kafka: options.kafka,
        config: options.config,
        log: options.log.child({ group: options.groupId }),
        transactionalId: options.transactional.transactionalId,
        consumer: this.#consumer,
        settings: options.transactional.settings,
      });
    }
    this.#watchdog = new StallWatchdog({
      stallAfterMs: options.config.consumer.stallAfterMs,
      measureLag: () => Promise.resolve(this.#lag()),
    });
  }

  /**
   * Records waiting on each assigned partition: its high watermark (which the client keeps from
   * its fetches) minus the record in hand, or, with none in hand, where the client reads next.
   * Local — no request to the broker, so it works, and cannot get stuck, while the broker is away.
   * The read position moves past the commit markers that end a transactional topic, which
   * committed offsets never do (they would show a lag of one forever). Empty when not connected
   * or nothing is assigned.
   */
  lagByPartition(): { topic: string; partition: number; lag: number }[] {
    const client = (this.#consumer as unknown as { _getInternalClient(): LocalConsumer | null })._getInternalClient();
    if (client === null) return [];
    try {
      return client.position(client.assignments()).map(({ topic, partition, offset }) => {
        const { highOffset, lowOffset } = client.getWatermarkOffsets(topic, partition);
        const from = this.#inHand.get(`${topic}/${partition}`) ?? (offset !== undefined && offset >= 0 ? offset : lowOffset);
        return { topic, partition, lag: Math.max(0, highOffset - from) };
      });
    } catch {
      // Not connected, or nothing assigned yet.
      return [];
    }
  }

  /** Records waiting on all assigned partitions together (see lagByPartition). */
  #lag(): number {
    return this.lagByPartition().reduce((sum, { lag }) => sum + lag, 0);
  }

  #onRebalance(code: number, assignment: readonly { topic: string; partition: number }[]): void {
    const partitions = assignment.length;
    if (code === ASSIGN) this.#assigned += partitions;
    // pause() without partitions only reaches the partitions held now: new ones are paused by name.
    if (code === ASSIGN && this.#paused && partitions > 0) this.#consumer.pause(assignment.map(({ topic, partition }) => ({ topic, partitions: [partition] })));
    if (code === REVOKE) this.#assigned = Math.max(0, this.#assigned - partitions);
    this.#options.log.info({ group: this.#options.groupId, event: code === ASSIGN ? "assigned" : "revoked", partitions }, "rebalance");
  }

  /** Connects, subscribes and starts handling records; resolves once consumption has begun. */
  async start(): Promise<void> {
    const { config, subscriptions, watchdogIntervalMs = 10000 } = this.#options;
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: subscriptions.map((s) => s.topic) });
    this.#running = true;
    const tx = this.#tx;
    if (tx === undefined) {
      await this.#consumer.run({
        partitionsConsumedConcurrently: config.consumer.partitionsConcurrently,
        eachMessage: ({ topic, partition, message }) => this.#handleRecord(topic, partition, message, this.#atLeastOnce()).then(() => undefined),
      });
    } else {
      // Fence a crashed predecessor now; failing here is not fatal, the first transaction retries.
      await tx.connect().catch((err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "transactional producer not connected yet"));
      await this.#consumer.run({
        partitionsConsumedConcurrently: config.consumer.partitionsConcurrently,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#transactionalBatch(tx, payload),
      });
      this.#every(tx.settings.maxMs, () => this.#gate.exclusive(() => (tx.due ? this.#commit(tx) : Promise.resolve())));
    }
    if (watchdogIntervalMs > 0) {
      this.#every(watchdogIntervalMs, () =>
        this.#watchdog.check().then(
          (report) => {
            if (report.stalled) this.#options.log.warn({ group: this.#options.groupId, ...report }, "consumer stalled");
          },
          (err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "lag check failed"),
        ),
      );
    }
  }

  #every(ms: number, work: () => Promise<unknown>): void {
    const timer = setInterval(() => void work(), ms);
    timer.unref();
    this.#timers.push(timer);
  }

  #atLeastOnce(): Delivery {
    return {
      out: this.#options.publisher,
      afterCommit: (effect) => void effect().catch((err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "after-handling step failed")),
      clean: () => true,
      beforeWaiting: () => Promise.resolve(),
    };
  }

  /**
   * One fetched batch of one partition, inside the open transaction, which batches of other
   * partitions share. A commit (when due) or an abort waits until no batch is inside (see Gate).
   * A batch the client marked stale (a rewind happened meanwhile) is left alone: it comes again.
   */
  async #transactionalBatch(tx: TransactionalOutput, payload: BatchPayload): Promise<void> {
    const { topic, partition, messages } = payload.batch;
    const gate = this.#gate;
    let inside = false;
    const enter = async () => {
      await gate.enter();
      inside = true;
    };
    const leave = () => {
      if (inside) gate.leave();
      inside = false;
    };
    await enter();
    try {
      for (const message of messages) {
        if (payload.isStale() || !this.#running) return;
        await this.#beginWaiting(tx);
        if (payload.isStale() || !this.#running) return;
        const effects: (() => Promise<void>)[] = [];
        let outputs = 0;
        const delivery: Delivery = {
          out: {
            publish: (...args) => ((outputs += 1), tx.sink.publish(...args)),
            send: (...args) => ((outputs += 1), tx.sink.send(...args)),
          },
          afterCommit: (effect) => effects.push(effect),
          clean: () => outputs === 0,
          beforeWaiting: async () => {
            leave();
            await gate.exclusive(() => this.#commit(tx));
            await enter();
            await this.#beginWaiting(tx);
          },
        };
        try {
          await this.#handleRecord(topic, partition, message, delivery);
        } catch (error) {
          if (error instanceof Abandoned) return;
          // Redo, or the DLQ refused: the transaction must not commit; it is aborted and every
          // record in it (this one too) is read again.
          tx.doom(error, { topic, partition, offset: message.offset });
          leave();
          await gate.exclusive(() => this.#commit(tx));
          return;
        }
        for (const effect of effects) tx.afterCommit(effect);
        tx.consumed(topic, partition, message.offset, message.headers);
        payload.resolveOffset(message.offset);
        if (tx.due) {
          leave();
          await gate.exclusive(() => (tx.due ? this.#commit(tx) : Promise.resolve()));
          await enter();
        }
      }
      // The batch is done. When no other batch is inside, commit now instead of when the interval
      // comes round: at low load a record's outputs are visible one commit after it arrived, and
      // at high load batches are large and other partitions' batches overlap, so commits still
      // cover many records.
      leave();
      if (gate.idle) await gate.exclusive(() => (tx.isOpen ? this.#commit(tx) : Promise.resolve()));
    } finally {
      leave();
    }
  }

  /** Begins a transaction, waiting out a broker that cannot take one, until it works or the runner stops. */
  async #beginWaiting(tx: TransactionalOutput): Promise<void> {
    for (;;) {
      try {
        await tx.begin();
        return;
      } catch (err) {
        if (!this.#running) throw new Abandoned("stopping");
        this.#options.log.warn({ err: messageOf(err) }, "cannot begin a transaction; waiting");
        await delay(this.#options.config.consumer.retryMaxDelayMs);
      }
    }
  }

  async #commit(tx: TransactionalOutput): Promise<void> {
    const result = await tx.commit();
    if (!result.committed) this.#rewind(result.rewind);
  }

  /** Seeks back so that the records of a failed transaction are read again. */
  #rewind(positions: readonly { topic: string; partition: number; offset: string }[]): void {
    for (const position of positions) {
      try {
        this.#consumer.seek(position);
      } catch (err) {
        // Not ours any more (revoked): its next owner reads from the last committed offset.
        this.#options.log.info({ ...position, err: messageOf(err) }, "rewind skipped");
      }
    }
  }

  /**
   * Decodes and handles one record through `delivery`; dead-letters what cannot be handled.
   * Throws Abandoned when stopping mid-outage, or what the DLQ itself threw.
   */
  #handleRecord(topic: string, partition: number, message: RawMessage, delivery: Delivery): Promise<Outcome> {
    const traced = { topic, partition, offset: message.offset, group: this.#options.groupId, headers: message.headers, key: message.key };
    return traceProcess(traced, (span) => this.#handleTraced(topic, partition, message, delivery, span));
  }

  /** #handleRecord inside the record's process span, which it tags with attempts and outcome. */
  async #handleTraced(topic: string, partition: number, message: RawMessage, delivery: Delivery, span: Span): Promise<Outcome> {
    const { handler, config, log, onOutcome } = this.#options;
    const record: FailedRecord = { topic, partition, ...message };
    const firstSeen = new Date();
    const where = { topic, partition, offset: message.offset };
    let attempts = 0;
    const partitionKey = `${topic}/${partition}`;
    this.#inHand.set(partitionKey, Number(message.offset));
    try {
      const decoded = decodeRecord(message, this.#accepted.get(topic) ?? []);
      // A child logger costs (its bindings go through redaction), and most records log nothing:
      // it is made when first used.
      let orderLog: Logger | undefined;
      const logOfOrder = () => (orderLog ??= log.child({ ...where, orderId: decoded.envelope.orderId, eventType: decoded.envelope.eventType }));
      const contextOf = (attempt: number): RecordContext => ({
        ...where,
        attempt,
        get log() {
          return logOfOrder();
        },
        out: delivery.out,
        afterCommit: (effect) => delivery.afterCommit(effect),
      });
      const attempt = () =>
        this.#retry.execute(({ attempt: retryIndex }) => {
          if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind");
          attempts += 1;
          if (retryIndex > 0) {
            logOfOrder().warn({ attempt: attempts }, "retrying");
            span.addEvent("retry", { [OrderflowAttributes.attempt]: attempts });
          }
          return handler(decoded, contextOf(attempts));
        });
      for (;;) {
        try {
          await attempt();
          break;
        } catch (error) {
          if (!isOutage(error)) throw error;
          if (!this.#running) throw new Abandoned("stopping");
          if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind");
          logOfOrder().warn({ err: messageOf(error), attempts }, "waiting out an outage");
          await delivery.beforeWaiting();
          await delay(config.consumer.retryMaxDelayMs);
        }
      }
      this.#watchdog.progressed();
      span.setAttributes({ [OrderflowAttributes.attempt]: attempts, [OrderflowAttributes.outcome]: "handled" });
      onOutcome?.("handled", record);
      return "handled";
    } catch (error) {
      if (error instanceof Abandoned || error instanceof Redo) throw error;
      if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind", { cause: error });
      attempts = Math.max(attempts, 1);
      const level = error instanceof PoisonRecordError ? "warn" : "error";
      log[level]({ ...where, errorClass: errorClassOf(error), err: messageOf(error), attempts }, "dead-lettering record");
      // If the DLQ cannot take it either, this throws: the record is read again.
      span.setAttributes({
        [OrderflowAttributes.attempt]: attempts,
        [OrderflowAttributes.outcome]: "dead-lettered",
        [OrderflowAttributes.dlqTopic]: dlqTopicOf(topic),
        [MessagingAttributes.errorType]: errorClassOf(error),
      });
      await deadLetter(delivery.out, record, { error, attempts, firstSeen, service: config.service });
      this.#watchdog.progressed();
      onOutcome?.("dead-lettered", record, error);
      return "dead-lettered";
    } finally {
      this.#inHand.delete(partitionKey);
    }
  }

  /** Pauses or resumes every subscribed topic (admin "pause consumption"). */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    // Not consuming yet: the flag is applied when partitions are assigned.
    if (!this.#running) return;
    const topics = this.#options.subscriptions.map((s) => ({ topic: s.topic }));
    if (paused) this.#consumer.pause(topics);
    else this.#consumer.resume(topics);
  }

  /** Runs the watchdog once now. */
  checkStall(): Promise<StallReport> {
    return this.#watchdog.check();
  }

  health(): RunnerHealth {
    return { running: this.#running, assignedPartitions: this.#assigned, stall: this.#watchdog.report };
  }

  /** Lets the record in hand finish, commits what was handled, and leaves the group. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#running = false;
    const tx = this.#tx;
    if (tx !== undefined) {
      await this.#gate.exclusive(() => this.#commit(tx));
      await tx.close();
    }
    await this.#consumer.disconnect();
  }
}
