/**
 * Graceful drain, with a real process: SIGTERM while a record is being handled lets it finish,
 * commits its offset and exits 0, so a restarted member does not handle it again.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { createTopics, openTestKafka, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
let t: TestKafka;
let publisher: Publisher;

beforeAll(async () => {
  t = await openTestKafka("shutdown");
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher.disconnect();
  await t.close();
});

describe("SIGTERM", () => {
  it("drains the in-flight record, commits it and exits 0", async () => {
    const topic = t.topic("orders.created");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 1);
    const groupId = `drain-${randomUUID()}`;
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "test/fixtures/drain-worker.ts"), groupId, "1500"], {
      cwd: root,
      env: { ...process.env, KAFKA_BROKERS: t.config.kafka.brokers, TOPIC_PREFIX: t.config.topicPrefix, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await waitFor(() => stdout.includes("ready"), { timeoutMs: 60_000, what: "the worker to start" });
      const orderId = randomUUID();
      await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
      await waitFor(() => stdout.includes(`started ${orderId}`), { what: "the record to be in flight" });
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(stdout).toContain(`finished ${orderId}`);
      const [committed] = await t.fetchOffsets({ groupId, topics: [topic] });
      expect(committed?.partitions.find((p) => p.partition === 0)?.offset).toBe("1");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
