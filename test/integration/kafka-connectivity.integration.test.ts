/**
 * The seed's Kafka connectivity tests, against the real broker: delivery reports, a consumer
 * group sharing and rebalancing partitions, catalog topic creation, every event type through the
 * broker in both encodings, and a corrupt record dead-lettered while the partition keeps flowing.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema, PaymentCompletedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { catalog, replication, sagaTopics } from "../../infra/topics.ts";
import { decodeRecord, encodeRecord } from "../../lib/codec/codec.ts";
import { headerValue, Headers } from "../../lib/codec/envelope.ts";
import { TransientError } from "../../lib/errors.ts";
import type { Outcome } from "../../lib/kafka/consumer-runner.ts";
import { DlqHeaders } from "../../lib/kafka/dlq.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { applyTopics, desiredTopics, describeTopics } from "../../lib/kafka/topics.ts";
import { createTopics, openTestKafka, readRecords, testRunner, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";

let t: TestKafka;
let publisher: Publisher;

beforeAll(async () => {
  t = await openTestKafka("connectivity");
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher.disconnect();
  await t.close();
});

describe("producer", () => {
  it("resolves with the broker's delivery report only after the ack", async () => {
    const topic = t.topic("orders.created");
    await createTopics(t.admin, [topic], 3);
    const orderId = randomUUID();
    const delivery = await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
    expect(delivery.topic).toBe(topic);
    expect(delivery.partition).toBeGreaterThanOrEqual(0);
    expect(Number(delivery.offset)).toBeGreaterThanOrEqual(0);
    const [record] = await readRecords(t, topic, 1);
    expect(record?.key?.toString()).toBe(orderId);
    expect(record?.partition).toBe(delivery.partition);
    expect(record?.offset).toBe(delivery.offset);
  });

  it("fails with a TransientError when the topic does not exist (auto-create is off)", async () => {
    await expect(publisher.publish("no.such.topic", OrderCreatedSchema, sampleOf(OrderCreatedSchema), { orderId: randomUUID() })).rejects.toBeInstanceOf(TransientError);
  });
});

describe("topic catalog", () => {
  it("creates every catalog topic with its partitions, replication and DLQ, and a second apply changes nothing", async () => {
    const prefix = `${t.config.topicPrefix}cat.`;
    const desired = desiredTopics(catalog, replication.local, prefix);
    const first = await applyTopics(t.admin, desired);
    expect(first.created.length).toBe(catalog.length);
    // A topic just created may be missing from the metadata the client has for a moment (seen in CI).
    const actual = await waitFor(async () => {
      const described = await describeTopics(t.admin, desired.map((d) => d.name));
      return described.length === desired.length ? described : undefined;
    }, { what: "metadata of every topic just created" });
    for (const want of desired) {
      const have = actual.find((a) => a.name === want.name);
      expect(have, want.name).toEqual({ name: want.name, partitions: want.partitions, replicationFactor: 1 });
    }
    const second = await applyTopics(t.admin, desired);
    expect(second.created).toEqual([]);
    expect(second.drift).toEqual([]);
    expect(second.unchanged.length).toBe(catalog.length);
  });

  it("reports drift instead of changing a topic that differs", async () => {
    const prefix = `${t.config.topicPrefix}drift.`;
    const spec = sagaTopics[0];
    await createTopics(t.admin, [`${prefix}${spec.name}`], 2);
    const result = await applyTopics(t.admin, desiredTopics([spec], replication.local, prefix));
    expect(result.created).toEqual([]);
    expect(result.drift).toEqual([{ topic: `${prefix}${spec.name}`, field: "partitions", desired: spec.partitions, actual: 2 }]);
    const [after] = await describeTopics(t.admin, [`${prefix}${spec.name}`]);
    expect(after?.partitions).toBe(2);
  });
});

describe("every event type through the broker", () => {
  for (const encoding of ["binary", "json"] as const) {
    it(`round-trips in ${encoding}`, async () => {
      const topic = t.topic(`roundtrip.${encoding}`);
      await createTopics(t.admin, [topic], 1);
      const schemas = sagaTopics.flatMap((s) => s.valueTypes);
      const sent = schemas.map((schema) => {
        const orderId = randomUUID();
        return { schema, init: sampleOf(schema, orderId), orderId };
      });
      for (const { schema, init, orderId } of sent) {
        await publisher.send(topic, encodeRecord(schema, init, { key: orderId, orderId, producer: "test", encoding }));
      }
      const records = await readRecords(t, topic, sent.length);
      records.sort((a, b) => Number(a.offset) - Number(b.offset));
      records.forEach((record, index) => {
        const { schema, init } = sent[index];
        const decoded = decodeRecord(record, schemas);
        expect(decoded.schema.typeName).toBe(schema.typeName);
        expect(decoded.message).toEqual(create(schema, init));
      });
    });
  }
});

describe("consumer runner", () => {
  it("dead-letters a corrupt record with its reason and still handles the next good one", async () => {
    const topic = t.topic("payments.completed");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 1);
    const handled: string[] = [];
    const outcomes: Outcome[] = [];
    const runner = testRunner(t, publisher, {
      topic,
      valueTypes: [PaymentCompletedSchema],
      handler: (record) => {
        handled.push(record.envelope.orderId);
        return Promise.resolve();
      },
      onOutcome: (outcome) => outcomes.push(outcome),
    });
    await runner.start();
    try {
      const orderId = randomUUID();
      const good = encodeRecord(PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), { key: orderId, orderId, producer: "test", encoding: "binary" });
      await publisher.send(topic, { ...good, value: Buffer.from("\u00ff\u00ffnot protobuf") });
      await publisher.send(topic, good);
      await waitFor(() => handled.length === 1, { what: "the good record to be handled" });
      expect(handled).toEqual([orderId]);
      expect(outcomes).toEqual(["dead-lettered", "handled"]);
      const [dead] = await readRecords(t, `${topic}.dlq`, 1);
      expect(headerValue(dead?.headers, DlqHeaders.originTopic)).toBe(topic);
      expect(headerValue(dead?.headers, DlqHeaders.originOffset)).toBe("0");
      expect(headerValue(dead?.headers, DlqHeaders.errorClass)).toBe("poison.malformed");
      expect(headerValue(dead?.headers, DlqHeaders.errorMessage)).toMatch(/could not be parsed/);
      expect(headerValue(dead?.headers, DlqHeaders.attempts)).toBe("1");
      expect(headerValue(dead?.headers, Headers.eventId)).toBe(good.headers[Headers.eventId]);
      expect(dead?.value?.toString("latin1")).toContain("not protobuf");
    } finally {
      await runner.stop();
    }
  });

  it("retries a failing handler with backoff, then dead-letters after the bound", async () => {
    const topic = t.topic("payments.flaky");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 1);
    const attempts = new Map<string, number>();
    const flakyOnce = randomUUID();
    const alwaysBroken = randomUUID();
    const runner = testRunner(t, publisher, {
      config: { ...t.config, consumer: { ...t.config.consumer, maxAttempts: 3 } },
      topic,
      valueTypes: [PaymentCompletedSchema],
      handler: (record) => {
        const id = record.envelope.orderId;
        const n = (attempts.get(id) ?? 0) + 1;
        attempts.set(id, n);
        if (id === alwaysBroken || n === 1) return Promise.reject(new Error("handler bug"));
        return Promise.resolve();
      },
    });
    await runner.start();
    try {
      for (const orderId of [alwaysBroken, flakyOnce]) {
        await publisher.send(topic, encodeRecord(PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), { key: orderId, orderId, producer: "test", encoding: "binary" }));
      }
      await waitFor(() => attempts.get(flakyOnce) === 2, { what: "the flaky record to succeed on its second try" });
      expect(attempts.get(alwaysBroken)).toBe(3);
      const [dead] = await readRecords(t, `${topic}.dlq`, 1);
      expect(headerValue(dead?.headers, Headers.orderId)).toBe(alwaysBroken);
      expect(headerValue(dead?.headers, DlqHeaders.errorClass)).toBe("unknown");
      expect(headerValue(dead?.headers, DlqHeaders.attempts)).toBe("3");
    } finally {
      await runner.stop();
    }
  });

  it("waits out an outage past the retry bound instead of dead-lettering", async () => {
    const topic = t.topic("payments.outage");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 1);
    let attempts = 0;
    const outageAttempts = 6;
    const runner = testRunner(t, publisher, {
      config: { ...t.config, consumer: { ...t.config.consumer, maxAttempts: 2 } },
      topic,
      valueTypes: [PaymentCompletedSchema],
      handler: () => {
        attempts += 1;
        return attempts < outageAttempts ? Promise.reject(new TransientError("redis is restarting")) : Promise.resolve();
      },
    });
    await runner.start();
    try {
      const orderId = randomUUID();
      await publisher.send(topic, encodeRecord(PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId), { key: orderId, orderId, producer: "test", encoding: "binary" }));
      await waitFor(() => attempts === outageAttempts, { what: "the record to get through once the outage is over" });
      const dlqMarks = await t.admin.fetchTopicOffsets(`${topic}.dlq`);
      expect(dlqMarks.reduce((sum, m) => sum + Number(m.high), 0)).toBe(0);
    } finally {
      await runner.stop();
    }
  });

  it("shares partitions in a group of two and rebalances when one member leaves", async () => {
    const topic = t.topic("orders.shared");
    await createTopics(t.admin, [topic, `${topic}.dlq`], 6);
    const groupId = `g-${randomUUID()}`;
    const seenBy: Record<"a" | "b", Set<string>> = { a: new Set(), b: new Set() };
    const member = (name: "a" | "b") =>
      testRunner(t, publisher, {
        log: t.log.child({ member: name }),
        groupId,
        topic,
        valueTypes: [OrderCreatedSchema],
        handler: (record) => {
          seenBy[name].add(record.envelope.orderId);
          return Promise.resolve();
        },
      });
    const a = member("a");
    const b = member("b");
    await a.start();
    await b.start();
    let bStopped = false;
    try {
      await waitFor(() => a.health().assignedPartitions > 0 && b.health().assignedPartitions > 0 && a.health().assignedPartitions + b.health().assignedPartitions === 6, {
        timeoutMs: 60_000,
        what: "both members to hold partitions",
      });
      const send = async (count: number) => {
        const ids: string[] = [];
        for (let i = 0; i < count; i += 1) {
          const orderId = randomUUID();
          ids.push(orderId);
          await publisher.publish("orders.shared", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
        }
        return ids;
      };
      const firstBatch = await send(60);
      await waitFor(() => firstBatch.every((id) => seenBy.a.has(id) || seenBy.b.has(id)), { what: "the first batch" });
      expect(seenBy.a.size).toBeGreaterThan(0);
      expect(seenBy.b.size).toBeGreaterThan(0);
      expect(firstBatch.filter((id) => seenBy.a.has(id) && seenBy.b.has(id))).toEqual([]);

      await b.stop();
      bStopped = true;
      await waitFor(() => a.health().assignedPartitions === 6, { timeoutMs: 60_000, what: "the remaining member to take all partitions" });
      const secondBatch = await send(30);
      await waitFor(() => secondBatch.every((id) => seenBy.a.has(id)), { what: "the second batch on the remaining member" });
    } finally {
      await a.stop();
      if (!bStopped) await b.stop();
    }
  });
});
