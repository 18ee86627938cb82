/**
 * Follows topics from the end they have now, for tools that watch what happens next (the load
 * generator waiting for orders to end): every committed record produced after the call is handed
 * to `onRecord`, nothing before it. A manual assignment at the current high watermarks — no group,
 * nothing committed, no rebalance to wait for — so no record can slip by between "start watching"
 * and the first one sent.
 */
import confluent, { type Message } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import type { Admin } from "./client.ts";
import { asError, readRecordOf, type ReadRecord } from "./read-to-end.ts";

const BATCH = 1000;

export interface Tail {
  /** Stops following; resolves once the consumer has left. */
  stop(): Promise<void>;
}

/** Starts following `topics` (actual names) from their current end. */
export async function tailTopics(config: Pick<Config, "kafka">, admin: Admin, topics: readonly string[], onRecord: (record: ReadRecord) => void): Promise<Tail> {
  const start: { topic: string; partition: number; offset: number }[] = [];
  for (const topic of topics) {
    for (const mark of await admin.fetchTopicOffsets(topic)) start.push({ topic, partition: mark.partition, offset: Number(mark.high) });
  }
  const consumer = new confluent.KafkaConsumer(
    {
      "bootstrap.servers": config.kafka.brokers,
      "group.id": "orderflow-tail",
      "enable.auto.commit": false,
      "isolation.level": "read_committed",
      "fetch.wait.max.ms": 10,
    },
    {},
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (err) => (err ? reject(asError(err)) : resolve())));
  // Wait up to 100 ms for the first record of a poll, then take whatever else is ready without
  // waiting: a record is handed on within milliseconds of arriving (the default waits per record).
  consumer.setDefaultConsumeTimeout(100);
  (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
  consumer.assign(start);
  let running = true;
  const loop = (async () => {
    while (running) {
      const messages = await new Promise<Message[]>((resolve) => consumer.consume(BATCH, (err, batch) => resolve(err ? [] : batch)));
      for (const message of messages) onRecord(readRecordOf(message));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    },
  };
}
