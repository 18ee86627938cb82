/**
 * Rebuilds the order read model from the log: drop it, note each projection topic's end, then
 * replay every record up to there with a fresh consumer group. Dropping first and noting the end
 * second means a record the live projection applies meanwhile is either replayed or kept — never
 * lost; applying twice is harmless because the projection is idempotent by event id.
 */
import { randomUUID } from "node:crypto";
import { topicSpec } from "../../infra/topics.ts";
import { decodeRecord } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import { PoisonRecordError } from "../../lib/errors.ts";
import { createConsumer, topicName, type Admin, type Kafka } from "../../lib/kafka/client.ts";
import { type OrderProjection, projectionTopics } from "./projection.ts";

export interface RebuildResult {
  readonly eventsApplied: number;
  readonly orders: number;
}

export async function rebuildProjection(deps: { kafka: Kafka; admin: Admin; config: Config; projection: OrderProjection }, timeoutMs = 120_000): Promise<RebuildResult> {
  const { kafka, admin, config, projection } = deps;
  await projection.drop();
  const remaining = new Map<string, number>();
  for (const base of projectionTopics) {
    for (const mark of await admin.fetchTopicOffsets(topicName(config, base))) {
      if (Number(mark.high) > Number(mark.low)) remaining.set(`${topicName(config, base)}/${mark.partition}`, Number(mark.high));
    }
  }
  let eventsApplied = 0;
  const orders = new Set<string>();
  if (remaining.size === 0) return { eventsApplied, orders: 0 };
  const consumer = createConsumer(kafka, config, `order-projection-rebuild-${randomUUID()}`, { "enable.auto.commit": false });
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: projectionTopics.map((base) => topicName(config, base)) });
    await consumer.run({
      partitionsConsumedConcurrently: 3,
      eachMessage: async ({ topic, partition, message }) => {
        const key = `${topic}/${partition}`;
        const end = remaining.get(key);
        if (end === undefined || Number(message.offset) >= end) return;
        const base = topic.slice(config.topicPrefix.length);
        try {
          const record = decodeRecord(message, topicSpec(base).valueTypes);
          if (await projection.apply(base, record)) eventsApplied += 1;
          orders.add(record.envelope.orderId);
        } catch (err) {
          if (!(err instanceof PoisonRecordError)) throw err;
        }
        if (Number(message.offset) >= end - 1) remaining.delete(key);
        if (remaining.size === 0) finish();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`rebuild did not reach the end of the log in ${timeoutMs} ms`)), timeoutMs)))]);
    clearTimeout(timer);
  } finally {
    await consumer.disconnect();
  }
  return { eventsApplied, orders: orders.size };
}
