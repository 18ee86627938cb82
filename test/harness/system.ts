/**
 * Helpers for tests that run orderflow services: the whole topic catalog under a test prefix, the
 * environment a service needs to join that test's topics and Redis keys, and a topic watcher that
 * collects decoded records as they arrive.
 */
import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { catalog, replication, topicSpec } from "../../infra/topics.ts";
import { decodeUnlessPoison, type DecodedRecord } from "../../lib/codec/codec.ts";
import { createConsumer } from "../../lib/kafka/client.ts";
import { applyTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import type { Env } from "../../lib/config.ts";
import { startService, type RunningService, type Runtime, type ServiceParts } from "../../lib/service.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { testAuth } from "./auth.ts";
import { openTestKafka, type TestKafka } from "./kafka.ts";
import { openTestRedis, type TestRedis } from "./redis.ts";
import { waitFor } from "./wait.ts";
import type { OrderApi } from "../../services/cli/context.ts";
import { postOrder } from "../../services/cli/order-api.ts";
import { orderBody, testCards, type OrderLineBody } from "../../services/cli/samples.ts";

/** Creates every catalog topic (and DLQ) under the test's prefix. */
export async function createCatalogTopics(t: TestKafka): Promise<void> {
  await applyTopics(t.admin, desiredTopics(catalog, replication.local, t.config.topicPrefix));
}

/** Environment for a service joining this test's topics and Redis key prefix (and the order API's test key). */
export function serviceEnv(t: TestKafka, redisPrefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KAFKA_BROKERS: inject("kafkaBrokers"),
    REDIS_URL: inject("redisUrl"),
    TOPIC_PREFIX: t.config.topicPrefix,
    REDIS_KEY_PREFIX: redisPrefix,
    LOG_LEVEL: process.env["TEST_LOG_LEVEL"] ?? "fatal",
    CONSUMER_RETRY_INITIAL_MS: "10",
    CONSUMER_RETRY_MAX_MS: "50",
    HOME: process.env["HOME"] ?? "",
    ...testAuth().env,
    ...extra,
  };
}

export interface SeenRecord {
  readonly topic: string;
  readonly record: DecodedRecord;
}

/** Reads the given catalog topics from the start and keeps every decoded record. */
export async function watchTopics(t: TestKafka, bases: readonly string[]) {
  const seen: SeenRecord[] = [];
  const consumer = createConsumer(t.kafka, t.config, `watch-${randomUUID()}`);
  await consumer.connect();
  await consumer.subscribe({ topics: bases.map((base) => t.topic(base)) });
  await consumer.run({
    partitionsConsumedConcurrently: 3,
    eachMessage: ({ topic, message }) => {
      const base = topic.slice(t.config.topicPrefix.length);
      // Poison a test sent is skipped: throwing here would make the client redeliver it forever.
      const record = decodeUnlessPoison(message, topicSpec(base).valueTypes);
      if (record !== undefined) seen.push({ topic: base, record });
      return Promise.resolve();
    },
  });
  // Records published before the watcher holds its partitions were sometimes never seen: wait for them all.
  const partitions = bases.reduce((sum, base) => sum + topicSpec(base).partitions, 0);
  await waitFor(() => consumer.assignment().length >= partitions, { what: `the watcher of ${bases.join(", ")} to hold its partitions` });
  return {
    seen,
    /** Records of one order on one topic. */
    of(orderId: string, topic: string): DecodedRecord[] {
      return seen.filter((s) => s.topic === topic && s.record.envelope.orderId === orderId).map((s) => s.record);
    },
    /** Waits until `topic` has a record for `orderId`, and returns it. */
    async next(orderId: string, topic: string, timeoutMs = 30_000): Promise<DecodedRecord> {
      return waitFor(() => this.of(orderId, topic)[0], { timeoutMs, what: `${topic} for ${orderId}` });
    },
    close: () => consumer.disconnect(),
  };
}

/** One service running in-process for a test, with its own topics, Redis keys and a watcher. */
export interface TestService {
  readonly t: TestKafka;
  readonly r: TestRedis;
  readonly service: RunningService;
  readonly publisher: Publisher;
  readonly watch: Awaited<ReturnType<typeof watchTopics>>;
  close(): Promise<void>;
}

/**
 * Starts service `name` from its builder on the test broker and Redis, after `prepare` (seeding
 * Redis, for example), and watches `watched` topics from the start.
 */
export async function startTestService(
  name: string,
  build: (env: Env) => (runtime: Runtime) => ServiceParts,
  options: { env?: Record<string, string>; watched: readonly string[]; prepare?: (r: TestRedis) => Promise<void> },
): Promise<TestService> {
  const t = await openTestKafka(`${name}-test`);
  const r = await openTestRedis();
  await createCatalogTopics(t);
  await options.prepare?.(r);
  const env = serviceEnv(t, r.prefix, options.env ?? {});
  const service = await startService(name, build(env), env);
  const publisher = await createPublisher(t.kafka, t.config);
  const watch = await watchTopics(t, options.watched);
  return {
    t,
    r,
    service,
    publisher,
    watch,
    async close() {
      await watch.close();
      await publisher.disconnect();
      await service.stop();
      await r.close();
      await t.close();
    },
  };
}

/** Places an order over the REST API for a new customer (with its token); returns its id and fails the test unless it was accepted. */
export async function placeOrder(api: OrderApi, items: readonly OrderLineBody[], card: string = testCards.success): Promise<string> {
  const placed = await postOrder(api, orderBody({ customerId: `c-${randomUUID().slice(0, 8)}`, email: "shopper@example.com", items, card }));
  if (!placed.accepted) throw new Error(`order not accepted: HTTP ${placed.status} ${placed.error}`);
  return placed.orderId;
}
