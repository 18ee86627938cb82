/**
 * The consumer runner every service uses. For each record, in partition order: decode and
 * validate (unreadable → DLQ at once), call the handler, retry retriable failures in-process with
 * exponential backoff and jitter up to a bound, then dead-letter — except an outage (Redis or a
 * peer unreachable), which is waited out without giving up the record. Two ways to deliver:
 *
 * - transactional (services that consume, change state and produce): the outputs of a batch of
 *   records, their dead letters and their offsets commit in one Kafka transaction, every N records
 *   or T ms. A failed commit aborts, and the consumer is rewound to the first record of each
 *   partition in that transaction; handlers are idempotent by business key, so the redo produces
 *   the same outputs and no second effect.
 * - at-least-once (projections, which produce nothing): the offset is stored only after the record
 *   was handled or dead-lettered.
 *
 * Stops gracefully: the record in hand finishes, an open transaction commits.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { ExponentialBackoff, handleWhen, retry, type RetryPolicy } from "cockatiel";
import type { Config } from "../config.ts";
import { OrderflowError, PoisonRecordError, errorClassOf, isOutage, isRetriable, messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import { decodeRecord, type DecodedRecord } from "../codec/codec.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import { createConsumer, type Admin, type Consumer, type Kafka } from "./client.ts";
import { deadLetter, type FailedRecord } from "./dlq.ts";
import { groupLag } from "./lag.ts";
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
  readonly admin: Admin;
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
  /** Serialises batches and timed commits of a transactional runner. */
  #exclusive: Promise<unknown> = Promise.resolve();
  #assigned = 0;
  #running = false;
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
      rebalance_cb: (err: { code: number }, assignment: readonly unknown[]) => this.#onRebalance(err.code, assignment.length),
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
    const topics = options.subscriptions.map((s) => s.topic);
    this.#watchdog = new StallWatchdog({
      stallAfterMs: options.config.consumer.stallAfterMs,
      measureLag: async () => {
        const lags = await groupLag(options.admin, options.groupId, topics);
        return lags.reduce((sum, partition) => sum + partition.lag, 0);
      },
    });
  }

  #onRebalance(code: number, partitions: number): void {
    if (code === ASSIGN) this.#assigned += partitions;
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
      await this.#consumer.run({
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#serially(() => this.#transactionalBatch(tx, payload as unknown as BatchPayload)),
      });
      this.#every(tx.settings.maxMs, () => this.#serially(() => (tx.due ? this.#commit(tx) : Promise.resolve())));
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

  /** Runs `work` after everything queued before it. */
  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#exclusive.then(work, work);
    this.#exclusive = run.catch(() => undefined);
    return run;
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
   * One fetched batch of one partition, inside the open transaction (committed when due). A batch
   * the client marked stale (a rewind happened while it waited) is left alone: it will come again.
   */
  async #transactionalBatch(tx: TransactionalOutput, payload: BatchPayload): Promise<void> {
    const { topic, partition, messages } = payload.batch;
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
          if (tx.isOpen) await this.#commit(tx);
          await this.#beginWaiting(tx);
        },
      };
      try {
        await this.#handleRecord(topic, partition, message, delivery);
      } catch (error) {
        if (error instanceof Abandoned) return;
        // Redo, or the DLQ refused: abort the transaction and read everything in it again.
        const rewind = await tx.abort(error);
        const current = { topic, partition, offset: message.offset };
        this.#rewind(rewind.some((r) => r.topic === topic && r.partition === partition) ? rewind : [...rewind, current]);
        return;
      }
      for (const effect of effects) tx.afterCommit(effect);
      tx.consumed(topic, partition, message.offset);
      payload.resolveOffset(message.offset);
      if (tx.due) await this.#commit(tx);
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
  async #handleRecord(topic: string, partition: number, message: RawMessage, delivery: Delivery): Promise<Outcome> {
    const { handler, config, log, onOutcome } = this.#options;
    const record: FailedRecord = { topic, partition, ...message };
    const firstSeen = new Date();
    const recordLog = log.child({ topic, partition, offset: message.offset });
    let attempts = 0;
    try {
      const decoded = decodeRecord(message, this.#accepted.get(topic) ?? []);
      const orderLog = recordLog.child({ orderId: decoded.envelope.orderId, eventType: decoded.envelope.eventType });
      const context = { topic, partition, offset: message.offset, log: orderLog, out: delivery.out, afterCommit: (e: () => Promise<void>) => delivery.afterCommit(e) };
      const attempt = () =>
        this.#retry.execute(({ attempt: retryIndex }) => {
          if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind");
          attempts += 1;
          if (retryIndex > 0) orderLog.warn({ attempt: attempts }, "retrying");
          return handler(decoded, { ...context, attempt: attempts });
        });
      for (;;) {
        try {
          await attempt();
          break;
        } catch (error) {
          if (!isOutage(error)) throw error;
          if (!this.#running) throw new Abandoned("stopping");
          if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind");
          orderLog.warn({ err: messageOf(error), attempts }, "waiting out an outage");
          await delivery.beforeWaiting();
          await delay(config.consumer.retryMaxDelayMs);
        }
      }
      this.#watchdog.progressed();
      onOutcome?.("handled", record);
      return "handled";
    } catch (error) {
      if (error instanceof Abandoned || error instanceof Redo) throw error;
      if (!delivery.clean()) throw new Redo("a failed attempt left outputs behind", { cause: error });
      attempts = Math.max(attempts, 1);
      const level = error instanceof PoisonRecordError ? "warn" : "error";
      recordLog[level]({ errorClass: errorClassOf(error), err: messageOf(error), attempts }, "dead-lettering record");
      // If the DLQ cannot take it either, this throws: the record is read again.
      await deadLetter(delivery.out, record, { error, attempts, firstSeen, service: config.service });
      this.#watchdog.progressed();
      onOutcome?.("dead-lettered", record, error);
      return "dead-lettered";
    }
  }

  /** Pauses or resumes every subscribed topic (admin "pause consumption"). */
  setPaused(paused: boolean): void {
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
      await this.#serially(() => this.#commit(tx));
      await tx.close();
    }
    await this.#consumer.disconnect();
  }
}
