/**
 * The consumer runner every service uses. It fetches records in batches and hands them to the
 * handler concurrently by key (KeyedScheduler): records of different orders run in parallel, even
 * within one partition, while one key's records keep their order. For each record: decode (and
 * validate, unless a producer of ours wrote it), call the handler, retry retriable failures
 * in-process with exponential backoff and jitter up to a bound, then dead-letter. Two ways to deliver:
 *
 * - transactional (services that consume, change state and produce): the runner is a member of the
 *   process's one transaction (ProcessTransaction); outputs, dead letters and consumed positions
 *   commit together on the transaction's schedule. To commit, the runner stops taking records in
 *   and lets those in hand finish, so every position it sends covers only finished records. A failed
 *   attempt that already produced, or a DLQ that refuses, dooms the transaction: it is aborted,
 *   every partition rewinds to its first record in it, and handlers — idempotent by business key —
 *   redo the same outputs with no second effect. Each redo of a record that doomed it (or was
 *   dead-lettered in it) waits longer (exponential backoff, without holding up the commits); a
 *   record whose handler fails after producing CONSUMER_MAX_ATTEMPTS times is dead-lettered, so one
 *   bad record cannot keep aborting the process's transaction. A record that meets an outage (Redis or a peer unreachable, a breaker
 *   open) waits it out the same way (#waitOutOutage).
 * - at-least-once (projections, which produce nothing): a partition's offset is stored once every
 *   record before it was handled or dead-lettered; an outage is waited out in place.
 *
 * Stops gracefully: records in hand finish, the transaction commits, the group is left.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import type { Span } from "@opentelemetry/api";
import { ExponentialBackoff, handleWhen, retry, type RetryPolicy } from "cockatiel";
import type { Config } from "../config.ts";
import { OrderflowError, PoisonRecordError, RejectedError, errorClassOf, isOutage, isRetriable, messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import { decodeRecord, type DecodedRecord } from "../codec/codec.ts";
import { MessagingAttributes, OrderflowAttributes, traceProcess } from "../tracing.ts";
import { deadLetter, dlqTopicOf, type FailedRecord } from "./dlq.ts";
import { KeyedScheduler } from "./key-scheduler.ts";
import { ASSIGN, REVOKE, connectConsumer, consumeBatch, disconnect, headersOf, type Assigned, type Message, type NativeConsumer, type TopicPartitionOffset } from "./native.ts";
import type { Publisher, Sink } from "./publisher.ts";
import type { ProcessTransaction, TransactionMember } from "./transactions.ts";
import { StallWatchdog, type StallReport } from "./watchdog.ts";

/** Where a record came from and how often it has been tried, for the handler. */
export interface RecordContext {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** 1 on the first try. */
  readonly attempt: number;
  readonly log: Logger;
  /** Where the record's outputs go: into the process's transaction, or straight to the broker. */
  readonly out: Sink;
  /** Runs `effect` once the outputs are committed (at once when not transactional). */
  afterCommit(effect: () => Promise<void>): void;
}

export type RecordHandler = (record: DecodedRecord, context: RecordContext) => Promise<void>;

/** A topic to consume (its actual name) and the value types it may carry. */
export interface Subscription {
  readonly topic: string;
  readonly valueTypes: readonly DescMessage[];
  /**
   * Producers (the envelope's producer header) whose records were validated when encoded and are
   * not validated again here; records of anyone else are. Absent: every record is validated.
   */
  readonly trustedProducers?: ReadonlySet<string>;
}

/** What happened to one record; observers count these (metrics, tests). */
export type Outcome = "handled" | "dead-lettered";

export interface ConsumerRunnerOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly groupId: string;
  readonly subscriptions: readonly Subscription[];
  readonly handler: RecordHandler;
  /** Produces outputs and dead letters of an at-least-once runner. */
  readonly publisher: Publisher;
  /** Makes the runner transactional: a member of the process's transaction. */
  readonly transaction?: ProcessTransaction;
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

/** The record was not finished because the runner is stopping; it is neither handled nor dead-lettered. */
class Abandoned extends OrderflowError {
  readonly retriable = false;
  readonly errorClass = "abandoned";
}

/**
 * A failed attempt already put outputs into the transaction, or the record cannot be finished now
 * (an outage): the transaction is aborted and the record read again.
 */
class Redo extends OrderflowError {
  readonly retriable = false;
  readonly errorClass = "redo";
}

/** A partition's records taken in: where the transaction began on it, what comes next, what is in hand. */
interface PartitionProgress {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the first record taken in since the last commit (transactional), else undefined. */
  first: number | undefined;
  /** Offset after the last record taken in. */
  next: number;
  /** Offsets taken in and not finished. */
  inHand: Set<number>;
  /** Offsets of records waiting out an outage (a subset of inHand). */
  readonly parked: Set<number>;
  /**
   * Records that went on in the open transaction after waiting (an outage, a redo's backoff). Later
   * records of the partition may have committed meanwhile, so an abort does not read them again
   * from the broker: it hands these to the handler again itself.
   */
  readonly resumed: Map<number, Message>;
  /** Last position stored (at-least-once). */
  stored: number;
}

/** Why a record's handling doomed a transaction: its handler failed after producing, or the DLQ refused it. */
interface Redone {
  readonly count: number;
  readonly cause: unknown;
  /** True when the handler failed: past the attempt bound the record is dead-lettered instead. */
  readonly handlerFailed: boolean;
}

/** How long a rewound partition may go without its first record read again before it seeks once more. */
const STALE_SEEK_AGAIN_MS = 3000;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const keyOfPartition = (topic: string, partition: number) => `${topic}/${partition}`;
const keyOfRecord = (topic: string, partition: number, offset: number) => `${topic}/${partition}@${offset}`;

/** Runs one consumer group member until stopped. */
export class ConsumerRunner implements TransactionMember {
  readonly #options: ConsumerRunnerOptions;
  readonly #watchdog: StallWatchdog;
  readonly #accepted: ReadonlyMap<string, Subscription>;
  /** Bounded retries with exponential backoff and jitter, for retriable handler errors; one per runner. */
  readonly #retry: RetryPolicy;
  readonly #tx: ProcessTransaction | undefined;
  readonly #scheduler: KeyedScheduler;
  readonly #progress = new Map<string, PartitionProgress>();
  /** Per partition, the revocation generation: records fetched before it are dropped. */
  readonly #revokedAt = new Map<string, number>();
  /**
   * Per partition rewound by an abort, the offset its old stream had reached: records at or past it
   * were fetched before the seek (a fetch may straddle it) and are dropped, until a record before
   * it arrives — the first of the stream read again from the rewind's position. `seekAtMs`: when
   * the seek was last asked for (see #seekAgainIfStale).
   */
  readonly #staleFrom = new Map<string, { readonly from: number; seekAtMs: number }>();
  /** Records that doomed a transaction and are read again, by keyOfRecord; forgotten once finished or revoked. */
  readonly #redone = new Map<string, Redone>();
  /**
   * Records dead-lettered in the open transaction, by keyOfRecord. When it aborts, each is redone
   * like a record that doomed it (#rewind): a DLQ that refuses writes fails the commit, and without
   * this its records would abort every transaction they join, at once and for as long as it refuses.
   */
  readonly #deadLettered = new Set<string>();
  #generation = 0;
  #consumer: NativeConsumer | undefined;
  #assigned = 0;
  #running = false;
  #loop: Promise<void> | undefined;
  /** The last fetch returned fewer records than asked for: nothing more was waiting. */
  #caughtUp = true;
  /** Records fetched and held while the transaction commits. */
  #holding = 0;
  /** Set by an operator (admin "pause consumption"); partitions assigned meanwhile stay paused too. */
  #paused = false;
  #timers: NodeJS.Timeout[] = [];

  constructor(options: ConsumerRunnerOptions) {
    this.#options = options;
    this.#tx = options.transaction;
    this.#accepted = new Map(options.subscriptions.map((s) => [s.topic, s]));
    this.#scheduler = new KeyedScheduler(options.config.consumer.concurrency);
    this.#retry = retry(handleWhen(isRetriable), {
      maxAttempts: options.config.consumer.maxAttempts - 1,
      backoff: new ExponentialBackoff({
        initialDelay: options.config.consumer.retryInitialDelayMs,
        maxDelay: options.config.consumer.retryMaxDelayMs,
      }),
    });
    this.#watchdog = new StallWatchdog({
      stallAfterMs: options.config.consumer.stallAfterMs,
      measureLag: () => Promise.resolve(this.#lag()),
    });
  }

  get group(): string {
    return this.#options.groupId;
  }

  get consumer(): NativeConsumer | undefined {
    return this.#consumer;
  }

  get idle(): boolean {
    return this.#scheduler.pending === 0 && this.#holding === 0 && this.#caughtUp;
  }

  /**
   * Records waiting on each assigned partition: its high watermark (which the client keeps from
   * its fetches) minus the first record in hand, or, with none in hand, where the client reads next.
   * Local — no request to the broker, so it works, and cannot get stuck, while the broker is away.
   * The read position moves past the commit markers that end a transactional topic, which
   * committed offsets never do (they would show a lag of one forever). Empty when not connected.
   */
  lagByPartition(): { topic: string; partition: number; lag: number }[] {
    const consumer = this.#consumer;
    if (consumer === undefined || !consumer.isConnected()) return [];
    try {
      return consumer.position(consumer.assignments()).map(({ topic, partition, offset }) => {
        const { highOffset, lowOffset } = consumer.getWatermarkOffsets(topic, partition);
        const progress = this.#progress.get(keyOfPartition(topic, partition));
        const inHand = progress !== undefined && progress.inHand.size > 0 ? Math.min(...progress.inHand) : undefined;
        const from = inHand ?? (offset !== undefined && offset >= 0 ? offset : lowOffset);
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

  #onRebalance(code: number, partitions: Assigned[]): void {
    const consumer = this.#consumer;
    if (consumer === undefined) return;
    const log = this.#options.log;
    if (code === ASSIGN) {
      try {
        consumer.incrementalAssign(partitions);
        // pause() reaches only the partitions held now: new ones are paused by name.
        if (this.#paused && partitions.length > 0) consumer.pause(partitions);
      } catch (err) {
        log.warn({ err: messageOf(err) }, "could not take an assignment");
      }
      this.#assigned += partitions.length;
      log.info({ group: this.#options.groupId, event: "assigned", partitions: partitions.length }, "rebalance");
      return;
    }
    if (code !== REVOKE) return;
    // What was handled on the revoked partitions commits (or aborts) before they go.
    const committed = this.#tx === undefined ? Promise.resolve() : this.#tx.commit();
    void committed
      .catch((err: unknown) => log.warn({ err: messageOf(err) }, "commit before revocation failed"))
      .finally(() => {
        this.#generation += 1;
        for (const { topic, partition } of partitions) {
          const key = keyOfPartition(topic, partition);
          this.#progress.delete(key);
          this.#revokedAt.set(key, this.#generation);
          this.#staleFrom.delete(key);
          for (const record of this.#redone.keys()) if (record.startsWith(`${key}@`)) this.#redone.delete(record);
        }
        try {
          if (consumer.isConnected()) consumer.incrementalUnassign(partitions);
        } catch (err) {
          log.warn({ err: messageOf(err) }, "could not give up an assignment");
        }
        this.#assigned = Math.max(0, this.#assigned - partitions.length);
        log.info({ group: this.#options.groupId, event: "revoked", partitions: partitions.length }, "rebalance");
      });
  }

  /** Connects, subscribes and starts handling records; resolves once consumption has begun. */
  async start(): Promise<void> {
    const { config, log, groupId, subscriptions, watchdogIntervalMs = 10000 } = this.#options;
    const consumer = await connectConsumer(config, log.child({ group: groupId }), groupId, {
      extra: this.#tx === undefined ? { "enable.auto.offset.store": false } : { "enable.auto.commit": false },
      onRebalance: (code, partitions) => this.#onRebalance(code, partitions),
    });
    // Wait up to the poll interval for a first record, then take what else is already fetched.
    consumer.setDefaultConsumeTimeout(config.consumer.pollMs);
    consumer.setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.#consumer = consumer;
    consumer.subscribe(subscriptions.map((s) => s.topic));
    if (this.#tx !== undefined) {
      this.#tx.join(this);
      // Fence a crashed predecessor now; failing here is not fatal, the first transaction retries.
      await this.#tx.connect().catch((err: unknown) => log.warn({ err: messageOf(err) }, "transactional producer not connected yet"));
    }
    this.#running = true;
    this.#loop = this.#run();
    if (watchdogIntervalMs > 0) {
      this.#every(watchdogIntervalMs, () =>
        this.#watchdog.check().then(
          (report) => {
            if (report.stalled) log.warn({ group: groupId, ...report }, "consumer stalled");
          },
          (err: unknown) => log.warn({ err: messageOf(err) }, "lag check failed"),
        ),
      );
    }
  }

  #every(ms: number, work: () => Promise<unknown>): void {
    const timer = setInterval(() => void work(), ms);
    timer.unref();
    this.#timers.push(timer);
  }

  /** Fetches and hands out records until stopped. */
  async #run(): Promise<void> {
    const { config, log } = this.#options;
    const consumer = this.#consumer as NativeConsumer;
    const fetchMax = config.consumer.fetchMax;
    while (this.#running) {
      try {
        await this.#scheduler.room(config.consumer.concurrency * 4);
        const generation = this.#generation;
        const fetched = await consumeBatch(consumer, fetchMax);
        this.#caughtUp = fetched.length < fetchMax;
        if (fetched.length === 0) {
          this.#seekAgainIfStale();
          this.#tx?.memberIdle();
          continue;
        }
        this.#holding = fetched.length;
        try {
          // Records are taken in only while a transaction is open and not being committed.
          if (this.#tx !== undefined) while (this.#tx.closing || !(await this.#beginWaiting(this.#tx))) await this.#tx.closed();
        } finally {
          this.#holding = 0;
        }
        if (!this.#running) return;
        for (const message of fetched) {
          const key = keyOfPartition(message.topic, message.partition);
          if ((this.#revokedAt.get(key) ?? -1) > generation) continue;
          const stale = this.#staleFrom.get(key);
          if (stale !== undefined) {
            if (message.offset >= stale.from) continue;
            this.#staleFrom.delete(key);
          }
          this.#takeIn(message);
        }
        this.#seekAgainIfStale();
      } catch (err) {
        if (!this.#running) return;
        log.warn({ group: this.#options.groupId, err: messageOf(err) }, "fetch failed; trying again");
        await delay(config.consumer.retryInitialDelayMs);
      }
    }
  }

  /** Opens the transaction, waiting out a broker that cannot take one; false when a commit began meanwhile. */
  async #beginWaiting(tx: ProcessTransaction): Promise<boolean> {
    for (;;) {
      try {
        await tx.begin();
        return !tx.closing;
      } catch (err) {
        if (!this.#running) return true;
        this.#options.log.warn({ err: messageOf(err) }, "cannot begin a transaction; waiting");
        await delay(this.#options.config.consumer.retryMaxDelayMs);
      }
    }
  }

  /** Hands one fetched record to the scheduler under its key. */
  #takeIn(message: Message): void {
    const { topic, partition, offset } = message;
    const key = keyOfPartition(topic, partition);
    let progress = this.#progress.get(key);
    if (progress === undefined) {
      progress = { topic, partition, first: undefined, next: offset + 1, inHand: new Set(), parked: new Set(), resumed: new Map(), stored: -1 };
      this.#progress.set(key, progress);
    }
    // Read again by a rewind while it is still in hand (waiting out an outage, or handed back): it goes on once.
    if (progress.inHand.has(offset)) return;
    if (this.#tx !== undefined) progress.first ??= offset;
    progress.next = offset + 1;
    progress.inHand.add(offset);
    const owner = progress;
    const recordKey = this.#recordKeyOf(message, key);
    this.#scheduler.push(recordKey, () => this.#handleOne(message, recordKey, owner));
  }

  /** The scheduler's key of a record: its own key, or (keyless) its place in the partition. */
  #recordKeyOf(message: Message, partitionKey: string): string {
    return message.key === undefined || message.key === null ? `${partitionKey}#${message.offset}` : message.key.toString();
  }

  /** `again`: a resumed record handed back after an abort; it waits for the next transaction first. */
  async #handleOne(message: Message, recordKey: string, progress: PartitionProgress, again = false): Promise<void> {
    try {
      const outcome = await this.#handleRecord(message, recordKey, progress, again);
      // A dead letter inside a transaction is done only once that commits (committed()).
      if (this.#tx === undefined || outcome !== "dead-lettered") this.#redone.delete(keyOfRecord(message.topic, message.partition, message.offset));
      progress.inHand.delete(message.offset);
      if (this.#tx === undefined) this.#storePosition(progress);
    } catch (err) {
      // Not finished: no position may pass it (a transaction that could not finish a record is
      // aborted and rewinds; a stopping runner commits up to it).
      if (!(err instanceof Abandoned)) this.#options.log.error({ err: messageOf(err), topic: message.topic, offset: message.offset }, "record not finished");
    }
    if (this.#tx !== undefined && this.idle) this.#tx.memberIdle();
  }

  /**
   * A transactional record waits out an outage without holding up its process's commits: its key
   * is parked (the commit does not wait for it; the key's later records wait behind it) and its
   * partition's position stays at it. Records after it in the partition that finish meanwhile
   * commit with their outputs; after a crash in that window they are read again, and their
   * handlers, idempotent by business key, have no second effect. Once the wait is over the record
   * goes on inside the transaction open then. Throws Abandoned when stopping or revoked meanwhile.
   */
  async #waitOutOutage(tx: ProcessTransaction, recordKey: string, progress: PartitionProgress, message: Message, delayMs: number): Promise<void> {
    const { offset } = message;
    const partitionKey = keyOfPartition(progress.topic, progress.partition);
    progress.parked.add(offset);
    this.#scheduler.park(recordKey);
    try {
      await delay(delayMs);
      for (;;) {
        if (!this.#running) throw new Abandoned("stopping");
        if (this.#progress.get(partitionKey) !== progress) throw new Abandoned("revoked while waiting out an outage");
        if ((await this.#beginWaiting(tx)) && !tx.closing) {
          progress.resumed.set(offset, message);
          this.#scheduler.unpark(recordKey);
          return;
        }
        await tx.closed();
      }
    } finally {
      progress.parked.delete(offset);
    }
  }

  /** At-least-once: stores the partition's offset once every record before it is finished. */
  #storePosition(progress: PartitionProgress): void {
    const position = progress.inHand.size > 0 ? Math.min(...progress.inHand) : progress.next;
    if (position <= progress.stored || this.#progress.get(keyOfPartition(progress.topic, progress.partition)) !== progress) return;
    try {
      this.#consumer?.offsetsStore([{ topic: progress.topic, partition: progress.partition, offset: position }]);
      progress.stored = position;
    } catch (err) {
      // Revoked meanwhile: its next owner reads from the last committed offset.
      this.#options.log.info({ topic: progress.topic, partition: progress.partition, err: messageOf(err) }, "offset not stored");
    }
  }

  // --- TransactionMember -----------------------------------------------------------------------

  settle(): Promise<void> {
    return this.#scheduler.settled();
  }

  positions(): TopicPartitionOffset[] {
    const positions: TopicPartitionOffset[] = [];
    for (const progress of this.#progress.values()) {
      // A record that waited (parked) and went on in this transaction moves its partition's
      // position too, even when nothing else of that partition was taken in since the last commit.
      if (progress.first === undefined && progress.resumed.size === 0) continue;
      // Only records waiting out an outage can still be in hand at a commit: the position stays at the first.
      const offset = progress.inHand.size > 0 ? Math.min(...progress.inHand) : progress.next;
      positions.push({ topic: progress.topic, partition: progress.partition, offset });
    }
    return positions;
  }

  committed(): void {
    for (const recordId of this.#deadLettered) this.#redone.delete(recordId);
    this.#deadLettered.clear();
    for (const progress of this.#progress.values()) {
      progress.first = undefined;
      progress.resumed.clear();
    }
  }

  rewind(): void {
    if (this.#deadLettered.size > 0) this.#tx?.renewProducer();
    for (const recordId of this.#deadLettered) {
      const redone = this.#redone.get(recordId);
      const cause = new Error("the transaction holding its dead letter was aborted (the DLQ may refuse writes)");
      this.#redone.set(recordId, { count: (redone?.count ?? 0) + 1, cause, handlerFailed: redone?.handlerFailed ?? false });
    }
    this.#deadLettered.clear();
    for (const [key, progress] of this.#progress) {
      const again = [...progress.resumed.values()];
      progress.resumed.clear();
      this.#rewindPartition(key, progress);
      for (const message of again) {
        progress.inHand.add(message.offset);
        const recordKey = this.#recordKeyOf(message, key);
        this.#scheduler.push(recordKey, () => this.#handleOne(message, recordKey, progress, true));
      }
    }
  }

  /** Reads the partition again from the first record the aborted transaction took from it. */
  #rewindPartition(key: string, progress: PartitionProgress): void {
    if (progress.first === undefined) return;
    const position = { topic: progress.topic, partition: progress.partition, offset: progress.first };
    this.#staleFrom.set(key, { from: progress.next, seekAtMs: Date.now() });
    progress.next = progress.first;
    progress.first = undefined;
    // What was in hand is read again, except records waiting (which go on, and are not taken in twice).
    progress.inHand = new Set(progress.parked);
    this.#seek(position);
  }

  /**
   * A rewound partition whose first record read again has not come for STALE_SEEK_AGAIN_MS asks for
   * its seek once more. A seek asked for while the broker is away can be lost in the client (it
   * answers at once and does not report it): the partition then went on fetching its old stream,
   * every record of it dropped as stale, for good — a partition stuck with its lag while the rest of
   * the group moved on. Seeking again takes nothing in twice: it happens only while no record of
   * the stream read again has arrived (checked after each fetch is handed out), and the client
   * drops what it fetched before a seek.
   */
  #seekAgainIfStale(): void {
    const now = Date.now();
    for (const [key, stale] of this.#staleFrom) {
      if (now - stale.seekAtMs < STALE_SEEK_AGAIN_MS) continue;
      const progress = this.#progress.get(key);
      if (progress === undefined) {
        this.#staleFrom.delete(key);
        continue;
      }
      stale.seekAtMs = now;
      const position = { topic: progress.topic, partition: progress.partition, offset: progress.next };
      this.#options.log.warn({ group: this.#options.groupId, ...position }, "rewound partition still reading its old stream; seeking again");
      this.#seek(position);
    }
  }

  /** Asks the client to read a partition from `position` (without waiting: a wait holds one of its few worker threads). */
  #seek(position: TopicPartitionOffset): void {
    try {
      this.#consumer?.seek(position, 0, (err) => {
        if (err) this.#options.log.info({ ...position, err: messageOf(err) }, "rewind skipped");
      });
    } catch (err) {
      // Not ours any more (revoked): its next owner reads from the last committed offset.
      this.#options.log.info({ ...position, err: messageOf(err) }, "rewind skipped");
    }
  }

  // --- one record ------------------------------------------------------------------------------

  /** Decodes and handles one record; dead-letters what cannot be handled. */
  #handleRecord(message: Message, recordKey: string, progress: PartitionProgress, again: boolean): Promise<Outcome> {
    const headers = headersOf(message.headers);
    const key = typeof message.key === "string" ? Buffer.from(message.key) : (message.key ?? null);
    const traced = { topic: message.topic, partition: message.partition, offset: String(message.offset), group: this.#options.groupId, headers, key };
    const wait = (delayMs: number) => this.#waitOutOutage(this.#tx as ProcessTransaction, recordKey, progress, message, delayMs);
    return traceProcess(traced, (span) => this.#handleTraced(message, headers, key, span, wait, again));
  }

  /** How long a record waits before its `count`-th redo: exponential from the retry's initial delay, capped. */
  #redoDelayMs(count: number): number {
    const { retryInitialDelayMs, retryMaxDelayMs } = this.#options.config.consumer;
    return Math.min(retryMaxDelayMs, retryInitialDelayMs * 2 ** Math.min(count - 1, 20));
  }

  /** #handleRecord inside the record's process span, which it tags with attempts and outcome. */
  async #handleTraced(message: Message, headers: ReturnType<typeof headersOf>, key: Buffer | null, span: Span, wait: (delayMs: number) => Promise<void>, again: boolean): Promise<Outcome> {
    const { handler, config, log, onOutcome } = this.#options;
    const tx = this.#tx;
    const { topic, partition } = message;
    const offset = String(message.offset);
    const record: FailedRecord = { topic, partition, offset, key, value: message.value, headers };
    const firstSeen = new Date();
    const where = { topic, partition, offset };
    let attempts = 0;
    let outputs = 0;
    const effects: (() => Promise<void>)[] = [];
    const out: Sink =
      tx === undefined
        ? this.#options.publisher
        : {
            publish: (...args) => ((outputs += 1), tx.sink.publish(...args)),
            send: (...args) => ((outputs += 1), tx.sink.send(...args)),
          };
    const afterCommit =
      tx === undefined
        ? (effect: () => Promise<void>) => void effect().catch((err: unknown) => log.warn({ err: messageOf(err) }, "after-handling step failed"))
        : (effect: () => Promise<void>) => void effects.push(effect);
    const recordId = keyOfRecord(topic, partition, message.offset);
    const redone = tx === undefined ? undefined : this.#redone.get(recordId);
    const redo = (why: string, cause: unknown, handlerFailed: boolean): never => {
      this.#redone.set(recordId, { count: (redone?.count ?? 0) + 1, cause, handlerFailed });
      tx?.doom(new Redo(why, { cause }));
      throw new Abandoned(why);
    };
    try {
      // Read again after it doomed a transaction, or handed back after an abort: the next transaction first.
      if (redone !== undefined || again) await wait(redone === undefined ? 0 : this.#redoDelayMs(redone.count));
      if (redone !== undefined) {
        if (redone.handlerFailed && redone.count >= config.consumer.maxAttempts) {
          attempts = redone.count;
          throw new RejectedError(`the handler failed after producing outputs, ${redone.count} times: ${messageOf(redone.cause)}`, { cause: redone.cause });
        }
      }
      const subscription = this.#accepted.get(topic);
      const decoded = decodeRecord({ value: message.value, headers }, subscription?.valueTypes ?? [], subscription?.trustedProducers);
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
        out,
        afterCommit,
      });
      const attempt = () =>
        this.#retry.execute(({ attempt: retryIndex }) => {
          if (outputs > 0) redo("a failed attempt left outputs behind", undefined, true);
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
          logOfOrder().warn({ err: messageOf(error), attempts }, "waiting out an outage");
          if (tx === undefined) await delay(config.consumer.retryMaxDelayMs);
          else await wait(config.consumer.retryMaxDelayMs);
        }
      }
      for (const effect of effects) tx?.afterCommit(effect);
      tx?.handled(this.#options.groupId);
      this.#watchdog.progressed();
      span.setAttributes({ [OrderflowAttributes.attempt]: attempts, [OrderflowAttributes.outcome]: "handled" });
      onOutcome?.("handled", record);
      return "handled";
    } catch (error) {
      if (error instanceof Abandoned) throw error;
      if (outputs > 0) redo("a failed attempt left outputs behind", error, true);
      attempts = Math.max(attempts, 1);
      const level = error instanceof PoisonRecordError ? "warn" : "error";
      log[level]({ ...where, errorClass: errorClassOf(error), err: messageOf(error), attempts }, "dead-lettering record");
      span.setAttributes({
        [OrderflowAttributes.attempt]: attempts,
        [OrderflowAttributes.outcome]: "dead-lettered",
        [OrderflowAttributes.dlqTopic]: dlqTopicOf(topic),
        [MessagingAttributes.errorType]: errorClassOf(error),
      });
      // Inside a transaction the DLQ's answer comes with the commit (#deadLettered); outside one a
      // DLQ that refuses is waited out in place (the partition's position stays at the record).
      for (;;) {
        try {
          await deadLetter(out, record, { error, attempts, firstSeen, service: config.service });
          break;
        } catch (dlqError) {
          if (tx !== undefined) redo("the DLQ refused the record", dlqError, false);
          if (!this.#running) throw new Abandoned("stopping");
          log.warn({ ...where, err: messageOf(dlqError) }, "the DLQ refused the record; trying again");
          await delay(config.consumer.retryMaxDelayMs);
        }
      }
      if (tx !== undefined) this.#deadLettered.add(recordId);
      tx?.handled(this.#options.groupId);
      this.#watchdog.progressed();
      onOutcome?.("dead-lettered", record, error);
      return "dead-lettered";
    }
  }

  /** Pauses or resumes every assigned partition (admin "pause consumption"). */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    const consumer = this.#consumer;
    // Not consuming yet: the flag is applied when partitions are assigned.
    if (consumer === undefined || !this.#running) return;
    const assigned = consumer.assignments();
    if (paused) consumer.pause(assigned);
    else consumer.resume(assigned);
  }

  /** Runs the watchdog once now. */
  checkStall(): Promise<StallReport> {
    return this.#watchdog.check();
  }

  health(): RunnerHealth {
    return { running: this.#running, assignedPartitions: this.#assigned, stall: this.#watchdog.report };
  }

  /** Lets the records in hand finish, commits what was handled, and leaves the group. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    if (!this.#running) return;
    this.#running = false;
    await this.#loop;
    await this.#scheduler.settled();
    if (this.#tx !== undefined) {
      await this.#tx.commit();
      this.#tx.leave(this);
    }
    const consumer = this.#consumer;
    if (consumer !== undefined) await disconnect(consumer);
  }
}
