/**
 * Kafka transactions from TypeScript against the real broker: a transactional consumer's outputs
 * and offsets commit together in batches; an attempt that fails after producing is aborted and
 * redone, so its outputs appear once; a second owner of a transactional id fences the first, whose
 * commit fails and is rewound.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema, OrderValidatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { headerValue, Headers } from "../../lib/codec/envelope.ts";
import { RejectedError } from "../../lib/errors.ts";
import { createConsumer } from "../../lib/kafka/client.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { TransactionalOutput, type TransactionSettings } from "../../lib/kafka/transactions.ts";
import { createTopics, openTestKafka, readRecords, testRunner, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";

let t: TestKafka;
let publisher: Publisher;

beforeAll(async () => {
  t = await openTestKafka("transactions");
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher.disconnect();
  await t.close();
});

const settings: TransactionSettings = { maxRecords: 10, maxMs: 50, timeoutMs: 10_000 };

function record(orderId: string) {
  return encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key: orderId, orderId, producer: "test", encoding: "binary" });
}

async function committedOffset(groupId: string, topic: string): Promise<number> {
  const [entry] = await t.admin.fetchOffsets({ groupId, topics: [topic] });
  return (entry?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

describe("transactional consumer", () => {
  it("commits outputs and offsets together, once per batch, and redoes an attempt that failed after producing", async () => {
    const input = t.topic("tx.in");
    const output = t.topic("tx.out");
    await createTopics(t.admin, [input, `${input}.dlq`, output], 2);
    const orderIds = Array.from({ length: 25 }, () => randomUUID());
    const failOnce = orderIds[7] as string;
    let failed = false;
    const groupId = `g-${randomUUID()}`;
    const runner = testRunner(t, publisher, {
      groupId,
      topic: input,
      valueTypes: [OrderCreatedSchema],
      transactional: { transactionalId: `${groupId}.0`, settings },
      handler: async (created, context) => {
        const { orderId } = created.envelope;
        await context.out.publish("tx.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
        if (orderId === failOnce && !failed) {
          failed = true;
          throw new RejectedError("fails after producing, once");
        }
      },
    });
    await runner.start();
    try {
      for (const orderId of orderIds) await publisher.send(input, record(orderId));
      const outputs = await readRecords(t, output, orderIds.length);
      await waitFor(async () => (await committedOffset(groupId, input)) === orderIds.length, { what: "the input offsets to be committed" });
      const seen = outputs.map((r) => headerValue(r.headers, Headers.orderId));
      expect(failed).toBe(true);
      expect(new Set(seen)).toEqual(new Set(orderIds));
      expect(seen).toHaveLength(orderIds.length);
      // Read to the end (past the commit markers), the runner reports no lag.
      expect((await runner.checkStall()).lag).toBe(0);
      // Nothing went to the DLQ: the failed attempt was redone, not dead-lettered.
      const dlqMarks = await t.admin.fetchTopicOffsets(`${input}.dlq`);
      expect(dlqMarks.reduce((sum, m) => sum + Number(m.high), 0)).toBe(0);
    } finally {
      await runner.stop();
    }
  });

  it("fences a zombie: the older owner of a transactional id cannot commit and is told where to rewind", async () => {
    const input = t.topic("tx.fenced.in");
    const output = t.topic("tx.fenced.out");
    await createTopics(t.admin, [input, output], 1);
    const consumer = createConsumer(t.kafka, t.config, `g-${randomUUID()}`, { "enable.auto.commit": false });
    await consumer.connect();
    const id = `tx-${randomUUID()}`;
    const zombie = new TransactionalOutput({ kafka: t.kafka, config: t.config, log: t.log, transactionalId: id, consumer, settings });
    const successor = new TransactionalOutput({ kafka: t.kafka, config: t.config, log: t.log, transactionalId: id, consumer, settings });
    try {
      const [lost, kept] = [randomUUID(), randomUUID()];
      await zombie.begin();
      await zombie.sink.send(output, record(lost));
      await successor.begin();
      await successor.sink.send(output, record(kept));
      expect(await successor.commit()).toEqual({ committed: true, records: 0 });
      zombie.consumed(input, 0, "41");
      const result = await zombie.commit();
      expect(result.committed).toBe(false);
      expect(result.committed ? [] : result.rewind).toEqual([{ topic: input, partition: 0, offset: "41" }]);
      const marker = randomUUID();
      await publisher.send(output, record(marker));
      const seen = (await readRecords(t, output, 2)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(seen).toEqual([kept, marker]);
    } finally {
      await successor.close();
      await zombie.close();
      await consumer.disconnect();
    }
  });
});
