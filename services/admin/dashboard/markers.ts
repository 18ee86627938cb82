/**
 * Tells a commit marker from an unread record. On a topic written in transactions each partition
 * ends in a commit marker that takes an offset but is never delivered, so a group that read
 * everything commits one below the high watermark and looks one record behind. To tell, this reads
 * the few offsets in question with a read_committed consumer of its own (manually assigned, no
 * group, nothing committed): when its position passes them without a record being delivered, they
 * were only markers. Answers are cached per (partition, committed offset, high watermark) — those
 * never change their answer — so an idle system is read once, not every refresh.
 */
import confluent, { type KafkaConsumer, type Message } from "@confluentinc/kafka-javascript";
import type { Config } from "../../../lib/config.ts";

/** A partition read from `from` (a group's committed offset) up to `high` (its high watermark). */
export interface Gap {
  /** The actual (prefixed) topic name. */
  readonly topic: string;
  readonly partition: number;
  readonly from: number;
  readonly high: number;
}

/** How long one round of reading may take; a gap not settled by then keeps its raw lag. */
const ROUND_MS = 1000;
const POLL_MS = 100;
const BATCH = 100;

const keyOf = (gap: Gap) => `${gap.topic}:${gap.partition}:${gap.from}:${gap.high}`;
const asError = (err: { message: string }) => (err instanceof Error ? err : new Error(err.message));

/** Reads short gaps to find those that hold no records, only transaction markers. */
export class MarkerProbe {
  #consumer: KafkaConsumer | undefined;
  /** Settled gaps: true when the gap holds only markers. */
  #known = new Map<string, boolean>();

  constructor(private readonly config: Pick<Config, "kafka" | "topicPrefix">) {}

  /** The gaps among `gaps` that hold no deliverable record; a gap it cannot settle counts as holding one. */
  async onlyMarkers(gaps: readonly Gap[]): Promise<Set<Gap>> {
    const open = gaps.filter((gap) => !this.#known.has(keyOf(gap)));
    if (open.length > 0) await this.#read(open);
    // Keep only what this round asked about: the cache stays as small as the set of gaps.
    const kept = new Map<string, boolean>();
    for (const gap of gaps) {
      const known = this.#known.get(keyOf(gap));
      if (known !== undefined) kept.set(keyOf(gap), known);
    }
    this.#known = kept;
    return new Set(gaps.filter((gap) => this.#known.get(keyOf(gap)) === true));
  }

  /** Disconnects the consumer, if one was needed. */
  async close(): Promise<void> {
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (consumer !== undefined) await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }

  /**
   * Reads each partition once from the lowest offset asked about up to its high watermark (several
   * groups may ask about one partition from different offsets), then settles every gap: a record
   * delivered inside it → holds records; position past it with none → only markers; else unknown.
   */
  async #read(gaps: readonly Gap[]): Promise<void> {
    const consumer = await this.#connected();
    const key = (topic: string, partition: number) => `${topic}:${partition}`;
    const reads = new Map<string, { topic: string; partition: number; from: number; high: number; delivered: number[] }>();
    for (const { topic, partition, from, high } of gaps) {
      const read = reads.get(key(topic, partition));
      if (read === undefined) reads.set(key(topic, partition), { topic, partition, from, high, delivered: [] });
      else reads.set(key(topic, partition), { ...read, from: Math.min(read.from, from), high: Math.max(read.high, high) });
    }
    consumer.assign([...reads.values()].map(({ topic, partition, from }) => ({ topic, partition, offset: from })));
    try {
      const positions = () =>
        new Map(consumer.position([...reads.values()].map(({ topic, partition }) => ({ topic, partition }))).map((p) => [key(p.topic, p.partition), Number(p.offset ?? -1)]));
      const unread = () => [...positions()].some(([at, offset]) => offset < (reads.get(at)?.high ?? 0));
      const deadline = Date.now() + ROUND_MS;
      while (unread() && Date.now() < deadline) {
        const messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(BATCH, (err, batch) => (err ? reject(asError(err)) : resolve(batch))));
        for (const message of messages) reads.get(key(message.topic, message.partition))?.delivered.push(message.offset);
      }
      const reached = positions();
      for (const gap of gaps) {
        const at = key(gap.topic, gap.partition);
        if (reads.get(at)?.delivered.some((offset) => offset >= gap.from && offset < gap.high)) this.#known.set(keyOf(gap), false);
        else if ((reached.get(at) ?? -1) >= gap.high) this.#known.set(keyOf(gap), true);
      }
    } finally {
      consumer.unassign();
    }
  }

  async #connected(): Promise<KafkaConsumer> {
    if (this.#consumer !== undefined) return this.#consumer;
    // The plain (non-KafkaJS) consumer, as lib/kafka/read-to-end.ts uses it: manual assignment, no commits.
    const consumer = new confluent.KafkaConsumer(
      {
        "bootstrap.servers": this.config.kafka.brokers,
        "group.id": `${this.config.topicPrefix}admin-dashboard-markers`,
        "enable.auto.commit": false,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 50,
      },
      {},
    );
    await new Promise<void>((resolve, reject) => consumer.connect({}, (err) => (err ? reject(asError(err)) : resolve())));
    consumer.setDefaultConsumeTimeout(POLL_MS);
    this.#consumer = consumer;
    return consumer;
  }
}
