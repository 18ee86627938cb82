/**
 * Reads given offset ranges of partitions — for the benchmark, which counts records after a run:
 * the relays' output over the backlog, and what the saga produced during its fixed run. A plain
 * consumer with a manual assignment (no group, nothing committed). Transaction markers take
 * offsets but are never delivered, so a range counts as read when the consumer's position reaches
 * its end, not when a record with its last offset arrives.
 */
import confluent, { type Message } from "@confluentinc/kafka-javascript";
import { asError } from "../../lib/kafka/read-to-end.ts";

/** The offsets [from, to) of one partition. */
export interface OffsetRange {
  readonly topic: string;
  readonly partition: number;
  readonly from: number;
  readonly to: number;
}

const BATCH = 1000;

/**
 * Hands every record of `ranges` to `onMessage`: committed records only (`read_committed`), or
 * every appended record, aborted ones included (`read_uncommitted`). Rejects after `timeoutMs`.
 */
export async function readRanges(
  brokers: string,
  ranges: readonly OffsetRange[],
  isolation: "read_committed" | "read_uncommitted",
  onMessage: (message: Message) => void,
  timeoutMs = 300_000,
): Promise<void> {
  const wanted = new Map(ranges.filter((r) => r.to > r.from).map((r) => [`${r.topic}/${r.partition}`, r]));
  if (wanted.size === 0) return;
  const consumer = new confluent.KafkaConsumer(
    { "bootstrap.servers": brokers, "group.id": "orderflow-bench-reader", "enable.auto.commit": false, "isolation.level": isolation, "fetch.wait.max.ms": 50 },
    {},
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (err) => (err ? reject(asError(err)) : resolve())));
  try {
    consumer.assign([...wanted.values()].map(({ topic, partition, from }) => ({ topic, partition, offset: from })));
    const deadline = Date.now() + timeoutMs;
    const unfinished = () =>
      consumer
        .position([...wanted.values()].map(({ topic, partition }) => ({ topic, partition })))
        .filter((position) => Number(position.offset ?? -1) < (wanted.get(`${position.topic}/${position.partition}`)?.to ?? 0));
    while (unfinished().length > 0) {
      if (Date.now() > deadline) throw new Error(`could not read ${wanted.size} partition ranges in ${timeoutMs} ms`);
      const messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(BATCH, (err, batch) => (err ? reject(asError(err)) : resolve(batch))));
      for (const message of messages) {
        const range = wanted.get(`${message.topic}/${message.partition}`);
        if (range !== undefined && message.offset < range.to) onMessage(message);
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}
