/**
 * Reads topics from their beginning up to the end they had when the read began, in order per
 * partition — for tools that need "everything so far" (the invariant checker, rebuilding a read
 * model). Transactional topics end in commit markers that are never delivered as records, so a
 * partition counts as read when the consumer's position (which moves past markers) reaches its
 * end, not when a record with the last offset arrives. Uses the client's plain consumer with a
 * manual assignment: no group, nothing committed.
 */
import confluent, { type Message } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import type { Admin } from "./client.ts";

/** A record as the reader hands it on. */
export interface ReadRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: RawHeaders;
}

const BATCH = 500;

export const asError = (err: { message: string }) => (err instanceof Error ? err : new Error(err.message));

/** A plain-consumer message as the readers hand it on. */
export function readRecordOf(message: Message): ReadRecord {
  return {
    topic: message.topic,
    partition: message.partition,
    offset: String(message.offset),
    key: message.key === undefined || message.key === null ? null : Buffer.from(message.key),
    value: message.value,
    headers: headersOf(message),
  };
}

/** The headers of a plain-consumer message as one map (the client hands them over as a list). */
function headersOf(message: Message): RawHeaders {
  const headers: Record<string, Buffer | string> = {};
  for (const header of message.headers ?? []) Object.assign(headers, header);
  return headers;
}

/**
 * Calls `onRecord` for every committed record of `topics` (actual names) up to their current end;
 * rejects when that takes longer than `timeoutMs`.
 */
export async function readToEnd(
  config: Pick<Config, "kafka">,
  admin: Admin,
  topics: readonly string[],
  onRecord: (record: ReadRecord) => Promise<void> | void,
  timeoutMs = 120_000,
): Promise<void> {
  const ends = new Map<string, { topic: string; partition: number; low: number; high: number }>();
  for (const topic of topics) {
    for (const mark of await admin.fetchTopicOffsets(topic)) {
      const low = Number(mark.low);
      const high = Number(mark.high);
      if (high > low) ends.set(`${topic}/${mark.partition}`, { topic, partition: mark.partition, low, high });
    }
  }
  if (ends.size === 0) return;
  // The plain (non-KafkaJS) consumer; Node's named-export detection misses it in the CommonJS entry.
  const consumer = new confluent.KafkaConsumer(
    {
      "bootstrap.servers": config.kafka.brokers,
      "group.id": "orderflow-read-to-end",
      "enable.auto.commit": false,
      "isolation.level": "read_committed",
      "fetch.wait.max.ms": 50,
    },
    {},
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (err) => (err ? reject(asError(err)) : resolve())));
  try {
    consumer.assign([...ends.values()].map(({ topic, partition, low }) => ({ topic, partition, offset: low })));
    const deadline = Date.now() + timeoutMs;
    const unfinished = () =>
      consumer
        .position([...ends.values()].map(({ topic, partition }) => ({ topic, partition })))
        .filter((position) => Number(position.offset ?? -1) < (ends.get(`${position.topic}/${position.partition}`)?.high ?? 0));
    while (unfinished().length > 0) {
      if (Date.now() > deadline) throw new Error(`could not read to the end of ${topics.join(", ")} in ${timeoutMs} ms`);
      const messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(BATCH, (err, batch) => (err ? reject(asError(err)) : resolve(batch))));
      for (const message of messages) {
        const end = ends.get(`${message.topic}/${message.partition}`);
        if (end === undefined || message.offset >= end.high) continue;
        await onRecord(readRecordOf(message));
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}
