/**
 * Kafka transactions for consume → process → produce, the way Kafka Streams runs them under
 * exactly_once_v2: ONE transactional producer per process, shared by all of its consumer groups.
 * Every record handled since the last commit adds its outputs to the one open transaction; each
 * group's consumed positions are sent into it with that group's metadata (a member that lost its
 * partitions cannot commit them); outputs and positions become visible together or not at all.
 *
 * When it commits: once the transaction has been open TX_COMMIT_INTERVAL_MS (100 ms, as Streams),
 * or holds TX_MAX_RECORDS records — and earlier, once it is TX_IDLE_COMMIT_MS old, when every member
 * is idle (nothing in hand, nothing fetched, the last fetch caught up), so that at low load a hop
 * costs milliseconds, not the interval. To commit, every member stops taking records in and lets
 * the ones in hand finish; then positions and the commit go out, and handling resumes.
 *
 * Errors are sorted by the client's own flags: a retriable commit is tried again, an abortable
 * error aborts, and a fatal one (fenced by a newer owner of the id) drops the producer; the next
 * transaction connects a new one, whose start fences and aborts what the old one left open. After
 * an abort every member rewinds to the first record of each partition in the transaction.
 */
import { KafkaJS, type LibrdKafkaError } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import { messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { OutgoingRecord } from "../codec/codec.ts";
import { connectProducer, disconnect, nativeHeaders, transactions, type NativeConsumer, type NativeProducer, type TopicPartitionOffset } from "./native.ts";
import { sinkOf, type Sink } from "./publisher.ts";

/** The client's verdict on an error from a transactional call. */
export type TransactionErrorKind = "retriable" | "abortable" | "fatal" | "unknown";

/** Codes that end a producer even when the client leaves its `fatal` flag unset (seen for fencing). */
const fatalCodes: ReadonlySet<number> = new Set([KafkaJS.ErrorCodes.ERR__FENCED, KafkaJS.ErrorCodes.ERR__FATAL]);

/** Reads the retriable/abortable/fatal flags and codes the client sets on transactional errors (either API). */
export function classifyKafkaError(err: unknown): TransactionErrorKind {
  if (err instanceof KafkaJS.KafkaJSError) {
    if (err.fatal || fatalCodes.has(err.code)) return "fatal";
    if (err.abortable) return "abortable";
    if (err.retriable) return "retriable";
    return "unknown";
  }
  const native = err as Partial<LibrdKafkaError> | undefined;
  if (native === undefined || native === null || typeof native.code !== "number") return "unknown";
  if (native.isFatal === true || fatalCodes.has(native.code)) return "fatal";
  if (native.isTxnRequiresAbort === true) return "abortable";
  if (native.isRetriable === true) return "retriable";
  return "unknown";
}

/** When to commit, and how long the broker lets a transaction stay open. */
export interface TransactionSettings {
  /** Commit once the transaction has been open this long (TX_COMMIT_INTERVAL_MS)... */
  readonly commitIntervalMs: number;
  /** ...or earlier, once it is this old and every member is idle (TX_IDLE_COMMIT_MS)... */
  readonly idleCommitMs: number;
  /** ...or once it holds this many consumed records (TX_MAX_RECORDS). */
  readonly maxRecords: number;
  /** transaction.timeout.ms: the coordinator aborts a transaction left open longer. */
  readonly timeoutMs: number;
  /** linger.ms of the transactional producer: a commit sends what lingers at once. */
  readonly lingerMs: number;
}

/** A consumer group taking part in the process's transactions (a transactional consumer runner). */
export interface TransactionMember {
  readonly group: string;
  /** The consumer whose group metadata fences its offsets. */
  readonly consumer: NativeConsumer | undefined;
  /** True when nothing is in hand or fetched, and the last fetch found the consumer caught up. */
  readonly idle: boolean;
  /** Stops taking records in; resolves once every record taken in has finished. */
  settle(): Promise<void>;
  /** The positions to commit: for each partition handled since the last commit, the next offset. */
  positions(): TopicPartitionOffset[];
  /** The transaction committed: forget what it covered. */
  committed(): void;
  /** The transaction was aborted: go back to the first record of each partition it covered. */
  rewind(): void;
}

/** What the commits did, for metrics. */
export interface TransactionObserver {
  committed?(seconds: number, recordsByGroup: ReadonlyMap<string, number>): void;
  aborted?(reason: unknown): void;
}

export interface ProcessTransactionOptions {
  readonly config: Config;
  readonly log: Logger;
  /** Stable per process instance, so that a restarted instance fences (and aborts) its predecessor. */
  readonly transactionalId: string;
  readonly settings: TransactionSettings;
  readonly observer?: TransactionObserver;
  readonly now?: () => number;
}

const COMMIT_ATTEMPTS = 3;
const ABORT_ATTEMPTS = 3;
/** How long one transactional call may take before the client gives up on it. */
const CALL_TIMEOUT_MS = 10_000;

/** The process's transactional producer and its commit cycle. */
export class ProcessTransaction {
  readonly #options: ProcessTransactionOptions;
  readonly #now: () => number;
  readonly #members = new Set<TransactionMember>();
  #producer: NativeProducer | undefined;
  #connecting: Promise<NativeProducer> | undefined;
  #beginning: Promise<void> | undefined;
  #open = false;
  #openedAt = 0;
  /** Records handled in the open transaction, per group. */
  #records = new Map<string, number>();
  #recordCount = 0;
  #afterCommit: (() => Promise<void>)[] = [];
  /** Set when the open transaction must not commit. */
  #doomed: unknown;
  #closing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = 0;
  #closed = false;
  /** Set by renewProducer(): the next begin() connects a new producer. */
  #renew = false;
  /** Outputs of the records being handled go here while a transaction is open. */
  readonly sink: Sink;

  constructor(options: ProcessTransactionOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.sink = sinkOf(options.config, (topic, record) => this.#produce(topic, record));
  }

  /** True while a commit or abort is under way: members hold fetched records until it is done (closed()). */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /** Resolves when the commit or abort under way (if any) is done. */
  async closed(): Promise<void> {
    while (this.#closing !== undefined) await this.#closing;
  }

  join(member: TransactionMember): void {
    this.#members.add(member);
  }

  leave(member: TransactionMember): void {
    this.#members.delete(member);
  }

  /**
   * Connects the transactional producer now rather than at the first record. Connecting fences a
   * predecessor with the same id and aborts what it left open, so a restarted instance frees the
   * partitions a crash left behind an open transaction (read_committed readers wait on them).
   */
  async connect(): Promise<void> {
    await this.#connected();
  }

  #connected(): Promise<NativeProducer> {
    if (this.#producer !== undefined) return Promise.resolve(this.#producer);
    this.#connecting ??= (async () => {
      const { config, log, transactionalId, settings } = this.#options;
      const producer = await connectProducer(config, log, {
        "transactional.id": transactionalId,
        "transaction.timeout.ms": settings.timeoutMs,
        "linger.ms": settings.lingerMs,
        // The client insists that no request may wait longer than the transaction may live.
        "socket.timeout.ms": Math.min(60_000, settings.timeoutMs),
      });
      try {
        await transactions.init(producer, CALL_TIMEOUT_MS);
      } catch (err) {
        await disconnect(producer);
        throw err;
      }
      this.#producer = producer;
      return producer;
    })().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  /**
   * The next transaction starts on a new producer (a new epoch). A member asks for it after an abort
   * whose transaction carried a record the broker may have refused (a dead letter): refused records
   * use up the client's idempotence sequence numbers for their partition, and the client then fails
   * later writes there (OUT_OF_ORDER_SEQUENCE_NUMBER, "requires epoch bump") instead of recovering.
   */
  renewProducer(): void {
    this.#renew = true;
  }

  /** Opens a transaction unless one is open (or opening); a member calls it before it hands records to handlers. */
  async begin(): Promise<void> {
    await this.closed();
    if (this.#open) return;
    if (this.#renew && this.#producer !== undefined) {
      const old = this.#producer;
      this.#producer = undefined;
      // The new producer's start fences this one; it holds nothing open, so it goes in the background.
      void disconnect(old, () => this.#options.log.warn("a renewed transactional producer did not disconnect in time"));
    }
    this.#renew = false;
    this.#beginning ??= (async () => {
      const producer = await this.#connected();
      await transactions.begin(producer);
      this.#open = true;
      this.#openedAt = this.#now();
      this.#schedule(this.#options.settings.commitIntervalMs);
    })().finally(() => (this.#beginning = undefined));
    await this.#beginning;
  }

  #produce(topic: string, record: OutgoingRecord): Promise<void> {
    if (!this.#open || this.#producer === undefined) return Promise.reject(new Error("no transaction is open"));
    // Delivery is checked by the commit: it fails (and aborts) if any record of the transaction failed.
    this.#producer.produce(topic, null, record.value, record.key, Date.now(), null, nativeHeaders(record.headers));
    return Promise.resolve();
  }

  /** A member handled one record inside the open transaction. */
  handled(group: string): void {
    this.#records.set(group, (this.#records.get(group) ?? 0) + 1);
    this.#recordCount += 1;
    if (this.#recordCount >= this.#options.settings.maxRecords) this.#commitSoon();
  }

  /** Runs `effect` once the open transaction has committed (never if it aborts). */
  afterCommit(effect: () => Promise<void>): void {
    this.#afterCommit.push(effect);
  }

  /** The open transaction must not commit: it is aborted as soon as the records in hand finish. */
  doom(reason: unknown): void {
    this.#doomed ??= reason ?? new Error("doomed");
    this.#commitSoon();
  }

  /** A member became idle: commit early if every member is and the transaction is old enough. */
  memberIdle(): void {
    if (!this.#open || ![...this.#members].every((m) => m.idle)) return;
    const age = this.#now() - this.#openedAt;
    const wait = this.#options.settings.idleCommitMs - age;
    if (wait <= 0) this.#commitSoon();
    else this.#schedule(wait, true);
  }

  /** Arms the commit timer `ms` from now (an earlier one stays); `ifIdle` commits only if still idle then. */
  #schedule(ms: number, ifIdle = false): void {
    if (this.#closed) return;
    const due = this.#now() + ms;
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#open) return;
      if (ifIdle && ![...this.#members].every((m) => m.idle)) {
        this.#schedule(Math.max(1, this.#openedAt + this.#options.settings.commitIntervalMs - this.#now()));
        return;
      }
      this.#commitSoon();
    }, Math.max(0, ms));
  }

  #commitSoon(): void {
    if (this.#closing === undefined) void this.commit();
  }

  /**
   * Commits the open transaction: members settle, their positions and the commit go out; or, when
   * doomed or anything fails, aborts and has every member rewind. Resolves once handling may go on.
   */
  commit(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing.then(() => (this.#open ? this.commit() : undefined));
    // Members wait on closed() before they take records in again.
    this.#closing = this.#close().finally(() => (this.#closing = undefined));
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const members = [...this.#members];
    await Promise.all(members.map((member) => member.settle()));
    const producer = this.#producer;
    if (!this.#open || producer === undefined) {
      this.#doomed = undefined;
      return;
    }
    const started = performance.now();
    const doomed = this.#doomed;
    const records = this.#records;
    try {
      if (doomed !== undefined) throw doomed instanceof Error ? doomed : new Error(messageOf(doomed));
      for (const member of members) {
        const positions = member.positions();
        if (positions.length > 0 && member.consumer !== undefined) await this.#sendOffsetsRetrying(producer, positions, member.consumer);
      }
      await this.#commitRetrying(producer);
    } catch (error) {
      await this.#abandon(error, doomed !== undefined);
      for (const member of members) member.rewind();
      this.#options.observer?.aborted?.(error);
      return;
    }
    const effects = this.#afterCommit;
    this.#reset();
    for (const member of members) member.committed();
    this.#options.observer?.committed?.((performance.now() - started) / 1000, records);
    // All at once: they concern different records (Redis pipelines them).
    await Promise.all(effects.map((effect) => effect().catch((err: unknown) => this.#options.log.warn({ err: messageOf(err) }, "after-commit step failed"))));
  }

  /**
   * Sends a member's positions; tried again when the client says so — right after an abort the
   * coordinator may still be writing its markers and answers "concurrent transactions" for a moment.
   */
  async #sendOffsetsRetrying(producer: NativeProducer, positions: TopicPartitionOffset[], consumer: NativeConsumer): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await transactions.sendOffsets(producer, positions, consumer, CALL_TIMEOUT_MS);
        return;
      } catch (err) {
        if (classifyKafkaError(err) !== "retriable" || attempt >= COMMIT_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
  }

  async #commitRetrying(producer: NativeProducer): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await transactions.commit(producer, CALL_TIMEOUT_MS);
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
  async #abandon(cause: unknown, doomedByUs = false): Promise<void> {
    const producer = this.#producer;
    this.#reset();
    if (producer === undefined) return;
    const fatal = classifyKafkaError(cause) === "fatal";
    this.#options.log.warn({ err: messageOf(cause), fatal }, "transaction failed; aborting");
    if (!fatal) {
      // An abort while the client is still adding the transaction's partitions is refused by the
      // broker as a fatal state error (seen): what was produced is sent first, then aborted. Only
      // when we doomed a healthy transaction: after the client's own error (a record the broker
      // refused) it sends nothing more, and a flush would only wait out its whole timeout.
      if (doomedByUs) await transactions.flush(producer, CALL_TIMEOUT_MS).catch(() => undefined);
      for (let attempt = 1; attempt <= ABORT_ATTEMPTS; attempt += 1) {
        try {
          await transactions.abort(producer, CALL_TIMEOUT_MS);
          return;
        } catch (err) {
          if (classifyKafkaError(err) !== "retriable") break;
        }
      }
    }
    this.#producer = undefined;
    this.#options.log.warn({ fatal }, "transactional producer dropped; the next transaction connects a new one (which fences this one)");
    await disconnect(producer, () => this.#options.log.error("the dropped transactional producer did not disconnect in time; going on without it"));
  }

  #reset(): void {
    this.#open = false;
    this.#doomed = undefined;
    this.#records = new Map();
    this.#recordCount = 0;
    this.#afterCommit = [];
  }

  /** Commits what is open and ends the producer (the members must have stopped taking records in). */
  async close(): Promise<void> {
    await this.commit();
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const producer = this.#producer;
    this.#producer = undefined;
    if (producer !== undefined) await disconnect(producer);
  }
}
