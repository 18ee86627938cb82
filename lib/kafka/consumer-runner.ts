/**
 * The consumer runner every service uses. For each record, in partition order:
 * decode and validate (unreadable → DLQ at once), call the handler, retry retriable failures
 * in-process with exponential backoff and jitter up to a bound, then dead-letter. The offset is
 * stored only after the record was handled or dead-lettered; if even the DLQ cannot take it the
 * record is not acknowledged and will be read again. Stops gracefully: in-flight records finish.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { ExponentialBackoff, handleWhen, retry, type RetryPolicy } from "cockatiel";
import type { Config } from "../config.ts";
import { PoisonRecordError, errorClassOf, isRetriable, messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import { decodeRecord, type DecodedRecord } from "../codec/codec.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import { createConsumer, type Admin, type Consumer, type Kafka } from "./client.ts";
import { deadLetter, type FailedRecord } from "./dlq.ts";
import { groupLag } from "./lag.ts";
import type { Publisher } from "./publisher.ts";
import { StallWatchdog, type StallReport } from "./watchdog.ts";

/** Where a record came from and how often it has been tried, for the handler. */
export interface RecordContext {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** 1 on the first try. */
  readonly attempt: number;
  readonly log: Logger;
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
  /** Produces dead letters (and nothing else is required of it here). */
  readonly publisher: Publisher;
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

/** Runs one consumer group member until stopped. */
export class ConsumerRunner {
  readonly #options: ConsumerRunnerOptions;
  readonly #consumer: Consumer;
  readonly #watchdog: StallWatchdog;
  readonly #accepted: ReadonlyMap<string, readonly DescMessage[]>;
  /** Bounded retries with exponential backoff and jitter, for retriable handler errors; one per runner. */
  readonly #retry: RetryPolicy;
  #assigned = 0;
  #running = false;
  #timer: NodeJS.Timeout | undefined;

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
    });
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
    await this.#consumer.run({
      partitionsConsumedConcurrently: config.consumer.partitionsConcurrently,
      eachMessage: ({ topic, partition, message }) => this.#process(topic, partition, message),
    });
    this.#running = true;
    if (watchdogIntervalMs > 0) {
      this.#timer = setInterval(() => {
        this.#watchdog.check().then(
          (report) => {
            if (report.stalled) this.#options.log.warn({ group: this.#options.groupId, ...report }, "consumer stalled");
          },
          (err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "lag check failed"),
        );
      }, watchdogIntervalMs);
      this.#timer.unref();
    }
  }

  async #process(topic: string, partition: number, message: RawMessage): Promise<void> {
    const { handler, config, publisher, log, onOutcome } = this.#options;
    const record: FailedRecord = { topic, partition, ...message };
    const firstSeen = new Date();
    const recordLog = log.child({ topic, partition, offset: message.offset });
    let attempts = 0;
    try {
      const decoded = decodeRecord(message, this.#accepted.get(topic) ?? []);
      const orderLog = recordLog.child({ orderId: decoded.envelope.orderId, eventType: decoded.envelope.eventType });
      await this.#retry.execute(({ attempt }) => {
        attempts = attempt + 1;
        if (attempt > 0) orderLog.warn({ attempt: attempts }, "retrying");
        return handler(decoded, { topic, partition, offset: message.offset, attempt: attempts, log: orderLog });
      });
      this.#watchdog.progressed();
      onOutcome?.("handled", record);
    } catch (error) {
      attempts = Math.max(attempts, 1);
      const level = error instanceof PoisonRecordError ? "warn" : "error";
      recordLog[level]({ errorClass: errorClassOf(error), err: messageOf(error), attempts }, "dead-lettering record");
      // If the DLQ cannot take it either, this throws: the client seeks back and the record is read again.
      await deadLetter(publisher, record, { error, attempts, firstSeen, service: config.service });
      this.#watchdog.progressed();
      onOutcome?.("dead-lettered", record, error);
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

  /** Lets in-flight records finish, commits what was stored, and leaves the group. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#running = false;
    await this.#consumer.disconnect();
  }
}
