/**
 * Integration-test helpers over the real broker: per-test config with its own topic prefix and
 * groups, topic creation, and reading a topic back until enough records arrived.
 */
import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { loadConfig, type Config } from "../../lib/config.ts";
import { createLogger, type Logger } from "../../lib/log.ts";
import { createConsumer, createKafka, openGroupAdmin, type Admin, type GroupAdmin, type Kafka } from "../../lib/kafka/client.ts";
import type { DescMessage } from "@bufbuild/protobuf";
import type { RawHeaders } from "../../lib/codec/envelope.ts";
import { ConsumerRunner, type ConsumerRunnerOptions } from "../../lib/kafka/consumer-runner.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { waitFor } from "./wait.ts";

/** A prefix no other test uses. */
export function uniquePrefix(): string {
  return `t-${randomUUID().slice(0, 8)}.`;
}

/** Config for `service` against the test broker, under its own topic prefix. */
export function testConfig(service: string, env: Record<string, string> = {}): Config {
  return loadConfig(service, {
    KAFKA_BROKERS: inject("kafkaBrokers"),
    REDIS_URL: inject("redisUrl"),
    TOPIC_PREFIX: uniquePrefix(),
    LOG_LEVEL: process.env["TEST_LOG_LEVEL"] ?? "fatal",
    CONSUMER_RETRY_INITIAL_MS: "10",
    CONSUMER_RETRY_MAX_MS: "50",
    ...env,
  });
}

export interface TestKafka {
  readonly config: Config;
  readonly log: Logger;
  readonly kafka: Kafka;
  readonly admin: Admin;
  /** The prefixed name of a base topic. */
  topic(base: string): string;
  /** Committed offsets of a group, over an admin client that may ask (lib/kafka/client.ts: openGroupAdmin). */
  fetchOffsets(options: { groupId: string; topics?: string[] }): ReturnType<Admin["fetchOffsets"]>;
  close(): Promise<void>;
}

/** Kafka client, admin and config for one test file. */
export async function openTestKafka(service = "test", env: Record<string, string> = {}): Promise<TestKafka> {
  const config = testConfig(service, env);
  const log = createLogger(service, config.logLevel);
  const kafka = createKafka(config, log);
  const admin = kafka.admin();
  await admin.connect();
  let offsets: Promise<GroupAdmin> | undefined;
  return {
    config,
    log,
    kafka,
    admin,
    topic: (base) => `${config.topicPrefix}${base}`,
    fetchOffsets: async (options) => (await (offsets ??= openGroupAdmin(kafka, config, `${config.topicPrefix}test-offsets`))).admin.fetchOffsets(options),
    close: async () => {
      await admin.disconnect();
      await (await offsets)?.close();
    },
  };
}

/** Creates topics with `partitions` partitions (RF 1) and waits until they are usable. */
export async function createTopics(admin: Admin, names: readonly string[], partitions = 3, replicationFactor = 1): Promise<void> {
  await admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: partitions, replicationFactor })) });
  await waitFor(async () => {
    const metadata = await admin.fetchTopicMetadata({ topics: [...names] });
    return metadata.every((t) => t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0));
  }, { what: `topics ${names.join(", ")} to have leaders` });
}

export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: RawHeaders;
}

/** Reads `topic` from the beginning with a fresh group until `count` records arrived. */
export async function readRecords(t: Pick<TestKafka, "kafka" | "config">, topic: string, count: number, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  const consumer = createConsumer(t.kafka, t.config, `reader-${randomUUID()}`);
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    await consumer.run({
      eachMessage: ({ topic: from, partition, message }) => {
        records.push({ topic: from, partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers });
        return Promise.resolve();
      },
    });
    await waitFor(() => records.length >= count, { timeoutMs, what: `${count} records on ${topic} (have ${records.length})` });
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** A consumer runner on one test topic with this test's client, config and a fresh group. */
export function testRunner(
  t: TestKafka,
  publisher: Publisher,
  options: Pick<ConsumerRunnerOptions, "handler"> &
    Partial<Pick<ConsumerRunnerOptions, "groupId" | "config" | "log" | "onOutcome" | "watchdogIntervalMs" | "transaction">> & { topic: string; valueTypes: readonly DescMessage[] },
): ConsumerRunner {
  return new ConsumerRunner({
    config: options.config ?? t.config,
    log: options.log ?? t.log,
    groupId: options.groupId ?? `g-${randomUUID()}`,
    subscriptions: [{ topic: options.topic, valueTypes: options.valueTypes }],
    publisher,
    handler: options.handler,
    watchdogIntervalMs: options.watchdogIntervalMs ?? 0,
    ...(options.onOutcome === undefined ? {} : { onOutcome: options.onOutcome }),
    ...(options.transaction === undefined ? {} : { transaction: options.transaction }),
  });
}
