/**
 * Kafka transactions for consume → process → produce. A TransactionalOutput owns one transactional
 * producer per consumer: the outputs of the records handled since the last commit and those
 * records' offsets (sent with the consumer's group metadata, so a member that lost its partitions
 * cannot commit them) become visible together or not at all.
 *
 * Errors are sorted by the client's own flags: a retriable commit is tried again (the client's
 * commit gives up after 5 s, and trying again is how librdkafka asks a timed-out commit to go on),
 * an abortable error aborts, and a fatal one (fenced by a newer owner of the id, or broken) drops
 * the producer; the next transaction connects a new one, whose start aborts anything the old one
 * left open. After any failed commit the caller is told where to rewind its consumer to.
 */
import { KafkaJS } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import { messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import { BatchLinks, MessagingAttributes } from "../tracing.ts";
import { createProducer, type Consumer, type Kafka, type Producer } from "./client.ts";
import { sinkOf, type Sink } from "./publisher.ts";

/** The client's verdict on an error from a transactional call. */
export type TransactionErrorKind = "retriable" | "abortable" | "fatal" | "unknown";

/** Codes that end a producer even when the client leaves its `fatal` flag unset (seen for fencing). */
const fatalCodes: ReadonlySet<number> = new Set([KafkaJS.ErrorCodes.ERR__FENCED, KafkaJS.ErrorCodes.ERR__FATAL]);

/** Reads the retriable/abortable/fatal flags and codes the client sets on transactional errors. */
export function classifyKafkaError(err: unknown): TransactionErrorKind {
  if (!(err instanceof KafkaJS.KafkaJSError)) return "unknown";
  if (err.fatal || fatalCodes.has(err.code)) return "fatal";
  if (err.abortable) return "abortable";
  if (err.retriable) return "retriable";
  return "unknown";
}

/** When to commit, and how long the broker lets a transaction stay open. */
export interface TransactionSettings {
  /** Commit once this many consumed records are in the transaction... */
  readonly maxRecords: number;
  /** ...or once the transaction has been open this long. */
  readonly maxMs: number;
  /** transaction.timeout.ms: the coordinator aborts a transaction left open longer. */
  readonly timeoutMs: number;
}

/** A consumed position to go back to: the first record of a partition in a failed transaction. */
export interface Rewind {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** How a commit ended. */
export type CommitResult =
  | { readonly committed: true; readonly records: number }
  | { readonly committed: false; readonly rewind: readonly Rewind[]; readonly error: unknown };

export interface TransactionalOutputOptions {
  readonly kafka: Kafka;
  readonly config: Config;
  readonly log: Logger;
  /** Stable per consumer instance, so that a restarted instance fences (and aborts) its predecessor. */
  readonly transactionalId: string;
  /** The consumer whose offsets commit with the outputs. */
  readonly consumer: Consumer;
  readonly settings: TransactionSettings;
  readonly now?: () => number;
}

const COMMIT_ATTEMPTS = 3;
const ABORT_ATTEMPTS = 3;

/** Positions of one partition inside the open transaction. */
interface Span {
  readonly topic: string;
  readonly partition: number;
  readonly first: string;
  next: string;
}

/** Outputs and consumed offsets of one consumer, committed in batches. */
export class TransactionalOutput {
  readonly #options: TransactionalOutputOptions;
  readonly #now: () => number;
  #producer: Producer | undefined;
  #open = false;
  #openedAt = 0;
  #records = 0;
  readonly #spans = new Map<string, Span>();
  /** The traces of the records in the open transaction, for the commit span's links. */
  readonly #links = new BatchLinks();
  #pending: Promise<unknown>[] = [];
  #afterCommit: (() => Promise<void>)[] = [];
  /** Set when the open transaction must not commit: why, and a record to read again besides its own. */
  #doomed: { reason: unknown; also: Rewind } | undefined;
  #beginning: Promise<void> | undefined;
  /** Outputs of the record being handled go here while a transaction is open. */
  readonly sink: Sink;

  constructor(options: TransactionalOutputOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.sink = sinkOf(options.config, (topic, record) => this.#send(topic, record));
  }

  #send(topic: string, record: { key: string; value: Buffer; headers: Record<string, string> }): Promise<void> {
    if (!this.#open || this.#producer === undefined) return Promise.reject(new Error("no transaction is open"));
    const sent = this.#producer.send({ topic, messages: [{ key: record.key, value: record.value, headers: record.headers }] });
    // Checked all together before the commit; a failed send makes the transaction abortable anyway.
    sent.catch(() => undefined);
    this.#pending.push(sent);
    return Promise.resolve();
  }

  get settings(): TransactionSettings {
    return this.#options.settings;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** True when the open transaction holds enough records, or has been open long enough, to commit. */
  get due(): boolean {
    const { maxRecords, maxMs } = this.#options.settings;
    return this.#open && (this.#records >= maxRecords || this.#now() - this.#openedAt >= maxMs);
  }

  /** Begins a transaction unless one is open (or beginning); connects a producer first when there is none. */
  begin(): Promise<void> {
    if (this.#open) return Promise.resolve();
    this.#beginning ??= this.#begin().finally(() => (this.#beginning = undefined));
    return this.#beginning;
  }

  /**
   * Connects the transactional producer now rather than at the first record. Connecting fences a
   * predecessor with the same id and aborts what it left open, so a restarted instance frees the
   * partitions a crash left behind an open transaction (read_committed readers wait on them)
   * without waiting for the transaction timeout or for its own first record.
   */
  async connect(): Promise<void> {
    await this.#connected();
  }

  async #connected(): Promise<Producer> {
    if (this.#producer === undefined) {
      const producer = createProducer(this.#options.kafka, this.#options.config, {
        "transactional.id": this.#options.transactionalId,
        "transaction.timeout.ms": this.#options.settings.timeoutMs,
        // The client insists that no request may wait longer than the transaction may live.
        "socket.timeout.ms": Math.min(60_000, this.#options.settings.timeoutMs),
      });
      try {
        await producer.connect();
      } catch (err) {
        await producer.disconnect().catch(() => undefined);
        throw err;
      }
      this.#producer = producer;
    }
    return this.#producer;
  }

  async #begin(): Promise<void> {
    await (await this.#connected()).transaction();
    this.#open = true;
    this.#openedAt = this.#now();
  }

  /** Records that the record at `offset` (carrying `headers`) was handled inside the open transaction. */
  consumed(topic: string, partition: number, offset: string, headers?: RawHeaders): void {
    this.#links.add(headers);
    const key = `${topic}/${partition}`;
    const next = (BigInt(offset) + 1n).toString();
    const span = this.#spans.get(key);
    if (span === undefined) this.#spans.set(key, { topic, partition, first: offset, next });
    else span.next = next;
    this.#records += 1;
  }

  /** Runs `effect` once the open transaction has committed (never if it aborts). */
  afterCommit(effect: () => Promise<void>): void {
    this.#afterCommit.push(effect);
  }

  /** Marks the open transaction to be aborted at its commit; `also` is read again with its records. */
  doom(reason: unknown, also: Rewind): void {
    this.#doomed ??= { reason, also };
  }

  /** Commits outputs and offsets together; on any failure (or when doomed) aborts and says where to rewind. */
  async commit(): Promise<CommitResult> {
    const doomed = this.#doomed;
    if (!this.#open || this.#producer === undefined) {
      this.#doomed = undefined;
      return doomed === undefined ? { committed: true, records: 0 } : { committed: false, rewind: [doomed.also], error: doomed.reason };
    }
    const producer = this.#producer;
    const records = this.#records;
    if (doomed !== undefined) {
      const rewind = this.#rewindPositions();
      if (!rewind.some((r) => r.topic === doomed.also.topic && r.partition === doomed.also.partition)) rewind.push(doomed.also);
      await this.#abandon(doomed.reason);
      return { committed: false, rewind, error: doomed.reason };
    }
    try {
      await this.#links.commit("commit transaction", { [MessagingAttributes.system]: "kafka", "orderflow.transactional_id": this.#options.transactionalId }, async () => {
        await Promise.all(this.#pending);
        if (this.#spans.size > 0) {
          await producer.sendOffsets({ consumer: this.#options.consumer, topics: this.#offsets() });
        }
        await this.#commitRetrying(producer);
      });
    } catch (error) {
      const rewind = this.#rewindPositions();
      await this.#abandon(error);
      return { committed: false, rewind, error };
    }
    const effects = this.#afterCommit;
    this.#reset();
    // All at once: they concern different records (Redis pipelines them), and the next
    // transaction waits for this commit to return.
    await Promise.all(effects.map((effect) => effect().catch((err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "after-commit step failed"))));
    return { committed: true, records };
  }

  /** Aborts the open transaction; returns where to rewind to read its records again. */
  async abort(reason: unknown): Promise<readonly Rewind[]> {
    const rewind = this.#rewindPositions();
    if (this.#open) await this.#abandon(reason);
    return rewind;
  }

  #rewindPositions(): Rewind[] {
    return [...this.#spans.values()].map(({ topic, partition, first }) => ({ topic, partition, offset: first }));
  }

  /** Ends the producer; an open transaction is aborted first. */
  async close(): Promise<void> {
    await this.abort(new Error("closing"));
    await this.#producer?.disconnect().catch(() => undefined);
    this.#producer = undefined;
  }

  #offsets() {
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const span of this.#spans.values()) {
      const partitions = byTopic.get(span.topic) ?? [];
      partitions.push({ partition: span.partition, offset: span.next });
      byTopic.set(span.topic, partitions);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }

  async #commitRetrying(producer: Producer): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await producer.commit();
        return;
      } catch (err) {
        if (classifyKafkaError(err) !== "retriable" || attempt >= COMMIT_ATTEMPTS) throw err;
        this.#options.log.warn({ attempt, err: messageOf(err) }, "transaction commit timed out; trying again");
      }
    }
  }

  /**
   * Gives up the open transaction: aborts it, or — when the error was fatal or the abort itself
   * fails — drops the producer, so that the next begin() connects a new one (which aborts it).
   */
  async #abandon(cause: unknown): Promise<void> {
    const producer = this.#producer;
    const pending = this.#pending;
    this.#reset();
    if (producer === undefined) return;
    const fatal = classifyKafkaError(cause) === "fatal";
    this.#options.log.warn({ err: messageOf(cause), fatal }, "transaction failed; aborting");
    // A send still on its way into the client would land in the middle of the abort.
    await Promise.allSettled(pending);
    if (!fatal) {
      for (let attempt = 1; attempt <= ABORT_ATTEMPTS; attempt += 1) {
        try {
          await producer.abort();
          return;
        } catch (err) {
          if (classifyKafkaError(err) !== "retriable") break;
        }
      }
    }
    this.#producer = undefined;
    await producer.disconnect().catch(() => undefined);
  }

  #reset(): void {
    this.#open = false;
    this.#doomed = undefined;
    this.#records = 0;
    this.#spans.clear();
    this.#links.clear();
    this.#pending = [];
    this.#afterCommit = [];
  }
}
