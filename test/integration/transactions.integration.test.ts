/**
 * Kafka transactions from TypeScript against the real broker: committed records are visible to
 * read_committed consumers, aborted ones never are, and a second owner of a transactional id
 * fences the first (whose next transaction fails as fatal).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { headerValue, Headers } from "../../lib/codec/envelope.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { FatalProducerError, createTransactionalProducer, inTransaction } from "../../lib/kafka/transactions.ts";
import { createTopics, openTestKafka, readRecords, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";

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

function record(orderId: string) {
  return encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key: orderId, orderId, producer: "test", encoding: "binary" });
}

function toMessage(r: ReturnType<typeof record>) {
  return { key: r.key, value: r.value, headers: r.headers };
}

describe("transactions", () => {
  it("shows committed records and hides aborted ones from read_committed consumers", async () => {
    const topic = t.topic("tx.orders");
    await createTopics(t.admin, [topic], 1);
    const producer = await createTransactionalProducer(t.kafka, t.config, `tx-${randomUUID()}`);
    try {
      const committed = [randomUUID(), randomUUID()];
      await inTransaction(producer, async (tx) => {
        await tx.send({ topic, messages: committed.map((id) => toMessage(record(id))) });
      });
      const aborted = randomUUID();
      await expect(
        inTransaction(producer, async (tx) => {
          await tx.send({ topic, messages: [toMessage(record(aborted))] });
          throw new Error("handler failed after producing");
        }),
      ).rejects.toThrow("handler failed after producing");
      const marker = randomUUID();
      await publisher.send(topic, record(marker));

      const seen = (await readRecords(t, topic, 3)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(seen).toEqual([...committed, marker]);
      expect(seen).not.toContain(aborted);
    } finally {
      await producer.disconnect();
    }
  });

  it("fences a zombie: the older owner of a transactional id fails fatally", async () => {
    const topic = t.topic("tx.fenced");
    await createTopics(t.admin, [topic], 1);
    const id = `tx-${randomUUID()}`;
    const zombie = await createTransactionalProducer(t.kafka, t.config, id);
    const successor = await createTransactionalProducer(t.kafka, t.config, id);
    try {
      await inTransaction(successor, (tx) => tx.send({ topic, messages: [toMessage(record(randomUUID()))] }));
      const attempt = inTransaction(zombie, (tx) => tx.send({ topic, messages: [toMessage(record(randomUUID()))] }));
      await expect(attempt).rejects.toBeInstanceOf(FatalProducerError);
    } finally {
      await successor.disconnect();
      await zombie.disconnect().catch(() => undefined);
    }
  });
});
