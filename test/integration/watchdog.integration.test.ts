/**
 * The consumer runner's watchdog and pause on the real broker: a wedged handler with records
 * waiting is reported as a stall from the broker's lag; pausing stops consumption, resuming
 * catches up, and the lag drains to zero.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { createTopics, openTestKafka, testRunner, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";

let t: TestKafka;
let publisher: Publisher;

beforeAll(async () => {
  t = await openTestKafka("watchdog", { CONSUMER_STALL_AFTER_MS: "300" });
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher.disconnect();
  await t.close();
});

const publishOrders = async (count: number) => {
  for (let i = 0; i < count; i += 1) {
    const orderId = randomUUID();
    await publisher.publish("orders.watched", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
  }
};

describe("consumer health", () => {
  it("reports a stall while the handler is wedged and records wait, and recovers after", async () => {
    const topic = t.topic("orders.watched");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 1);
    let release: () => void = () => undefined;
    const wedged = new Promise<void>((resolve) => (release = resolve));
    let handled = 0;
    const runner = testRunner(t, publisher, {
      topic,
      valueTypes: [OrderCreatedSchema],
      handler: async () => {
        await wedged;
        handled += 1;
      },
      watchdogIntervalMs: 100,
    });
    await runner.start();
    try {
      await publishOrders(5);
      const stalled = await waitFor(async () => {
        const report = await runner.checkStall();
        return report.stalled ? report : undefined;
      }, { what: "a stall report" });
      expect(stalled.lag).toBe(5);
      expect(runner.health().running).toBe(true);

      release();
      await waitFor(() => handled === 5, { what: "the backlog to be handled" });
      const healthy = await waitFor(async () => {
        const report = await runner.checkStall();
        return report.lag === 0 ? report : undefined;
      }, { what: "lag to reach zero" });
      expect(healthy.stalled).toBe(false);
    } finally {
      release();
      await runner.stop();
    }
    expect(runner.health().running).toBe(false);
  });

  it("pauses and resumes consumption", async () => {
    const topic = t.topic("orders.watched");
    let handled = 0;
    const runner = testRunner(t, publisher, {
      topic,
      valueTypes: [OrderCreatedSchema],
      handler: () => {
        handled += 1;
        return Promise.resolve();
      },
    });
    await runner.start();
    try {
      await waitFor(() => handled >= 5 && runner.health().assignedPartitions === 1, { what: "the existing records" });
      runner.setPaused(true);
      const before = handled;
      await publishOrders(3);
      await waitFor(async () => (await t.admin.fetchTopicOffsets(topic)).some((mark) => Number(mark.high) === before + 3), { what: "three more records on the topic" });
      // The paused consumer does not fetch them; their handling would show within a fetch wait.
      await expect(waitFor(() => handled > before, { timeoutMs: 1500 })).rejects.toThrow(/timed out/);
      runner.setPaused(false);
      await waitFor(() => handled === before + 3, { what: "the paused records after resume" });
    } finally {
      await runner.stop();
    }
  });
});
