/**
 * Kafka transactions from TypeScript against the real broker: a process's one transaction carries
 * the outputs and offsets of several consumer groups and commits them together; an attempt that
 * fails after producing is aborted and redone, so its outputs appear once; records of different keys
 * in one partition are handled concurrently while one key's stay in order; a second owner of a
 * transactional id fences the first; and a relay process killed between produce and commit loses
 * and duplicates nothing.
 */
import { isMessage } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema, OrderValidatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { headerValue, Headers } from "../../lib/codec/envelope.ts";
import { RejectedError } from "../../lib/errors.ts";
import { createConsumer } from "../../lib/kafka/client.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { ProcessTransaction, type TransactionMember, type TransactionSettings } from "../../lib/kafka/transactions.ts";
import { connectConsumer, disconnect } from "../../lib/kafka/native.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { createTopics, openTestKafka, readRecords, testRunner, type TestKafka } from "../harness/kafka.ts";
import { sampleOf } from "../harness/samples.ts";
import { alterTopicConfigs } from "../harness/topic-config.ts";
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

const settings: TransactionSettings = { commitIntervalMs: 50, idleCommitMs: 5, maxRecords: 10, timeoutMs: 10_000, lingerMs: 5 };

function record(orderId: string, key = orderId) {
  return encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key, orderId, producer: "test", encoding: "binary" });
}

function transaction(id = `tx-${randomUUID()}`, overrides: Partial<TransactionSettings> = {}): ProcessTransaction {
  return new ProcessTransaction({ config: t.config, log: t.log, transactionalId: id, settings: { ...settings, ...overrides } });
}

async function committedOffset(groupId: string, topic: string): Promise<number> {
  const [entry] = await t.fetchOffsets({ groupId, topics: [topic] });
  return (entry?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

describe("the process transaction", () => {
  it("commits outputs and the offsets of two groups together, and redoes an attempt that failed after producing", async () => {
    const [inA, inB, output] = [t.topic("tx.a"), t.topic("tx.b"), t.topic("tx.out")];
    await createTopics(t.admin, [inA, inB, `${inA}.dlq`, `${inB}.dlq`, output], 2);
    const orderIds = Array.from({ length: 40 }, () => randomUUID());
    const failOnce = orderIds[7] as string;
    let failed = false;
    const tx = transaction();
    const groups = [`g-${randomUUID()}`, `g-${randomUUID()}`] as const;
    const runners = [inA, inB].map((topic, i) =>
      testRunner(t, publisher, {
        groupId: groups[i],
        topic,
        valueTypes: [OrderCreatedSchema],
        transaction: tx,
        handler: async (created, context) => {
          const { orderId } = created.envelope;
          await context.out.publish("tx.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
          if (orderId === failOnce && !failed) {
            failed = true;
            throw new RejectedError("fails after producing, once");
          }
        },
      }),
    );
    for (const runner of runners) await runner.start();
    try {
      for (const [i, orderId] of orderIds.entries()) await publisher.send(i % 2 === 0 ? inA : inB, record(orderId));
      const outputs = await readRecords(t, output, orderIds.length);
      await waitFor(async () => (await committedOffset(groups[0], inA)) === 20 && (await committedOffset(groups[1], inB)) === 20, { what: "both groups' offsets to be committed" });
      const seen = outputs.map((r) => headerValue(r.headers, Headers.orderId));
      expect(failed).toBe(true);
      expect(new Set(seen)).toEqual(new Set(orderIds));
      expect(seen).toHaveLength(orderIds.length);
      // Read to the end (past the commit markers), the runners report no lag.
      for (const runner of runners) expect((await runner.checkStall()).lag).toBe(0);
      // Nothing went to a DLQ: the failed attempt was redone, not dead-lettered.
      for (const topic of [inA, inB]) {
        const marks = await t.admin.fetchTopicOffsets(`${topic}.dlq`);
        expect(marks.reduce((sum, m) => sum + Number(m.high), 0)).toBe(0);
      }
    } finally {
      for (const runner of runners) await runner.stop();
      await tx.close();
    }
  });

  it("dead-letters a record whose handler keeps failing after producing, waiting longer before each redo, while the others commit once", async () => {
    const [input, output] = [t.topic("tx.wedge.in"), t.topic("tx.wedge.out")];
    await createTopics(t.admin, [input, `${input}.dlq`, output], 1);
    const orderIds = Array.from({ length: 20 }, () => randomUUID());
    const bad = orderIds[3] as string;
    const badAttemptsAt: number[] = [];
    const config = { ...t.config, consumer: { ...t.config.consumer, maxAttempts: 3, retryInitialDelayMs: 50, retryMaxDelayMs: 1000 } };
    const tx = transaction();
    const runner = testRunner(t, publisher, {
      config,
      topic: input,
      valueTypes: [OrderCreatedSchema],
      transaction: tx,
      handler: async (created, context) => {
        const { orderId } = created.envelope;
        await context.out.publish("tx.wedge.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
        if (orderId === bad) {
          badAttemptsAt.push(performance.now());
          throw new RejectedError("fails after producing, every time");
        }
      },
    });
    await runner.start();
    try {
      for (const orderId of orderIds) await publisher.send(input, record(orderId));
      const [deadLetter] = await readRecords(t, `${input}.dlq`, 1);
      expect(headerValue(deadLetter?.headers ?? {}, Headers.orderId)).toBe(bad);
      const good = orderIds.filter((id) => id !== bad);
      const outputs = (await readRecords(t, output, good.length)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(outputs.toSorted()).toEqual(good.toSorted());
      // The handler ran maxAttempts times; each redo waited at least twice as long as the one before.
      expect(badAttemptsAt).toHaveLength(3);
      const gaps = badAttemptsAt.slice(1).map((at, i) => at - (badAttemptsAt[i]));
      expect(gaps[0]).toBeGreaterThanOrEqual(50);
      expect(gaps[1]).toBeGreaterThanOrEqual(100);
    } finally {
      await runner.stop();
      await tx.close();
    }
  });

  it("reads a rewound partition again when the client lost the rewind's seek, taking no record in twice", async () => {
    const [input, output] = [t.topic("tx.lostseek.in"), t.topic("tx.lostseek.out")];
    await createTopics(t.admin, [input, `${input}.dlq`, output], 1);
    const orderIds = Array.from({ length: 20 }, () => randomUUID());
    const failOnce = orderIds[12] as string;
    let failed = false;
    const handled = new Map<string, number>();
    // The client answers the first seek on this topic at once and does nothing, as it may while the
    // broker is away: the partition goes on with its old stream (here: nothing more to fetch).
    type Seek = (position: { topic: string }, timeout: number, done?: (err: null) => void) => unknown;
    const consumerType = (createRequire(import.meta.url)("@confluentinc/kafka-javascript") as { KafkaConsumer: { prototype: { seek: Seek } } }).KafkaConsumer;
    const seek = consumerType.prototype.seek;
    let seeksLost = 0;
    consumerType.prototype.seek = function (this: unknown, position, timeout, done) {
      if (position.topic === input && seeksLost === 0) {
        seeksLost += 1;
        done?.(null);
        return this;
      }
      return seek.call(this, position, timeout, done);
    };
    const tx = transaction(undefined, { commitIntervalMs: 200, idleCommitMs: 200, maxRecords: 100 });
    const groupId = `g-${randomUUID()}`;
    const runner = testRunner(t, publisher, {
      groupId,
      topic: input,
      valueTypes: [OrderCreatedSchema],
      transaction: tx,
      handler: async (created, context) => {
        const { orderId } = created.envelope;
        handled.set(orderId, (handled.get(orderId) ?? 0) + 1);
        await context.out.publish("tx.lostseek.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
        if (orderId === failOnce && !failed) {
          failed = true;
          throw new RejectedError("fails after producing, once");
        }
      },
    });
    // Written before the runner starts: one fetch takes them all, so the aborted transaction holds several.
    for (const orderId of orderIds) await publisher.send(input, record(orderId));
    await runner.start();
    try {
      await waitFor(async () => (await committedOffset(groupId, input)) === orderIds.length, { timeoutMs: 30_000, what: "the partition's offset to be committed to its end" });
      const outputs = (await readRecords(t, output, orderIds.length)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(failed).toBe(true);
      expect(seeksLost).toBe(1);
      expect(outputs.toSorted()).toEqual(orderIds.toSorted());
      // The records of the aborted transaction were handled again (once more each), the others once.
      expect(handled.get(failOnce)).toBe(2);
      expect(Math.max(...handled.values())).toBe(2);
    } finally {
      consumerType.prototype.seek = seek;
      await runner.stop();
      await tx.close();
    }
  });

  it("a DLQ that refuses writes holds back only its poison record: the others commit meanwhile, and once it takes writes the record lands there once", async () => {
    const [input, output] = [t.topic("tx.dlqrefuses.in"), t.topic("tx.dlqrefuses.out")];
    const dlq = `${input}.dlq`;
    await createTopics(t.admin, [input, dlq, output], 1);
    // Every dead letter (its record and the DLQ headers) is larger than that, so the broker refuses
    // each; a transaction marker (about 80 bytes) still fits, so aborts can complete.
    await alterTopicConfigs(t.config.kafka.brokers, [dlq], { add: { "max.message.bytes": "128" } });
    const orderIds = Array.from({ length: 30 }, () => randomUUID());
    let aborts = 0;
    const tx = new ProcessTransaction({ config: t.config, log: t.log, transactionalId: `tx-${randomUUID()}`, settings, observer: { aborted: () => (aborts += 1) } });
    const groupId = `g-${randomUUID()}`;
    const runner = testRunner(t, publisher, {
      groupId,
      config: { ...t.config, consumer: { ...t.config.consumer, retryInitialDelayMs: 200, retryMaxDelayMs: 1000 } },
      topic: input,
      valueTypes: [OrderCreatedSchema],
      transaction: tx,
      handler: async (created, context) => {
        const { orderId } = created.envelope;
        await context.out.publish("tx.dlqrefuses.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId), { orderId });
      },
    });
    await runner.start();
    try {
      for (const [i, orderId] of orderIds.entries()) {
        if (i === 5) await publisher.send(input, { key: "poison", value: randomBytes(64), headers: { "event-type": "orderflow.v1.OrderCreated" } });
        await publisher.send(input, record(orderId));
      }
      // Every good record commits its output while the poison record waits for the DLQ.
      const outputs = (await readRecords(t, output, orderIds.length)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(outputs.toSorted()).toEqual(orderIds.toSorted());
      // Its redos wait longer and longer: a handful of aborts, not one per fetch.
      const abortsWhileRefused = aborts;
      expect(abortsWhileRefused).toBeGreaterThan(0);
      expect(abortsWhileRefused).toBeLessThan(15);
      // The group's position stays at the poison record (offset 5) until it is dead-lettered.
      expect(await committedOffset(groupId, input)).toBe(5);
      await alterTopicConfigs(t.config.kafka.brokers, [dlq], { remove: ["max.message.bytes"] });
      await waitFor(async () => (await committedOffset(groupId, input)) === orderIds.length + 1, { what: "the offset to pass the poison record" });
      const deadLetters: string[] = [];
      await readToEnd(t.config, t.admin, [dlq], (message) => void deadLetters.push(message.key?.toString() ?? ""));
      expect(deadLetters).toEqual(["poison"]);
    } finally {
      await runner.stop();
      await tx.close();
    }
  });

  it("handles different keys of one partition at once and keeps each key's records in order", async () => {
    const input = t.topic("tx.keys.in");
    const output = t.topic("tx.keys.out");
    await createTopics(t.admin, [input, `${input}.dlq`, output], 1);
    const keys = Array.from({ length: 20 }, () => randomUUID());
    const perKey = 5;
    const handled = new Map<string, number[]>();
    let running = 0;
    let mostAtOnce = 0;
    const tx = transaction();
    const runner = testRunner(t, publisher, {
      topic: input,
      valueTypes: [OrderCreatedSchema],
      transaction: tx,
      handler: async (created, context) => {
        running += 1;
        mostAtOnce = Math.max(mostAtOnce, running);
        // Stands for a Redis round trip: the handler waits, others may run meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (!isMessage(created.message, OrderCreatedSchema)) throw new Error("not an OrderCreated");
        const key = created.envelope.orderId;
        const sequence = Number(created.message.customerId);
        handled.set(key, [...(handled.get(key) ?? []), sequence]);
        await context.out.publish("tx.keys.out", OrderValidatedSchema, sampleOf(OrderValidatedSchema, key), { orderId: key });
        running -= 1;
      },
    });
    // Written before the runner starts, so that its first fetch takes many records of the one partition.
    for (let sequence = 0; sequence < perKey; sequence += 1) {
      for (const key of keys) {
        const value = encodeRecord(OrderCreatedSchema, { ...sampleOf(OrderCreatedSchema, key), customerId: String(sequence) }, { key, orderId: key, producer: "test", encoding: "binary" });
        await publisher.send(input, value);
      }
    }
    await runner.start();
    try {
      await readRecords(t, output, keys.length * perKey);
      expect(mostAtOnce).toBeGreaterThan(1);
      for (const key of keys) expect(handled.get(key)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      await runner.stop();
      await tx.close();
    }
  });

  it("fences a zombie: the older owner of a transactional id cannot commit, and its members rewind", async () => {
    const output = t.topic("tx.fenced.out");
    const input = t.topic("tx.fenced.in");
    await createTopics(t.admin, [input, output], 1);
    const consumer = await connectConsumer(t.config, t.log, `g-${randomUUID()}`, { extra: { "enable.auto.commit": false }, onRebalance: () => undefined });
    const id = `tx-${randomUUID()}`;
    // Commits only when told to: the zombie's must come after the successor fenced it.
    const zombie = transaction(id, { commitIntervalMs: 600_000 });
    const successor = transaction(id, { commitIntervalMs: 600_000 });
    const rewound: string[] = [];
    const member: TransactionMember = {
      group: "g",
      consumer,
      idle: false,
      settle: () => Promise.resolve(),
      positions: () => [{ topic: input, partition: 0, offset: 42 }],
      committed: () => rewound.push("committed"),
      rewind: () => rewound.push("rewound"),
    };
    try {
      const [lost, kept] = [randomUUID(), randomUUID()];
      await zombie.begin();
      await zombie.sink.send(output, record(lost));
      await successor.begin();
      await successor.sink.send(output, record(kept));
      await successor.commit();
      zombie.join(member);
      await zombie.commit();
      expect(rewound).toEqual(["rewound"]);
      const marker = randomUUID();
      await publisher.send(output, record(marker));
      const seen = (await readRecords(t, output, 2)).map((r) => headerValue(r.headers, Headers.orderId));
      expect(seen).toEqual([kept, marker]);
    } finally {
      await successor.close();
      await zombie.close();
      await disconnect(consumer);
    }
  });
});

describe("a relay process killed between produce and commit", () => {
  it("loses and duplicates nothing: its successor fences it and redoes the uncommitted records", async () => {
    const [input, output] = [t.topic("tx.kill.in"), t.topic("tx.kill.out")];
    await createTopics(t.admin, [input, `${input}.dlq`, output], 3);
    const orderIds = Array.from({ length: 300 }, () => randomUUID());
    for (const orderId of orderIds) await publisher.send(input, record(orderId));
    const relay = (env: Record<string, string>) =>
      spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "..", "load", "relay.ts")], {
        env: { ...process.env, KAFKA_BROKERS: t.config.kafka.brokers, REDIS_URL: t.config.redisUrl, LOG_LEVEL: "fatal", RELAY_STAGES: `${input}>${output}`, INSTANCE_ID: "kill", ...env },
        stdio: "ignore",
      });
    // read_uncommitted: the produced records are visible before any commit.
    const uncommitted: string[] = [];
    const peek = createConsumer(t.kafka, t.config, `peek-${randomUUID()}`, { "isolation.level": "read_uncommitted" });
    // A long interval: the first relay is killed while its one transaction is still open.
    const first = relay({ TX_COMMIT_INTERVAL_MS: "600000", TX_IDLE_COMMIT_MS: "600000", TX_MAX_RECORDS: "100000", TX_TIMEOUT_MS: "900000" });
    try {
      await peek.connect();
      await peek.subscribe({ topics: [output] });
      await peek.run({
        eachMessage: ({ message }) => {
          const id = headerValue(message.headers, Headers.orderId);
          if (id !== undefined) uncommitted.push(id);
          return Promise.resolve();
        },
      });
      await waitFor(() => uncommitted.length >= orderIds.length, { timeoutMs: 60_000, what: "the relay to produce every record into its open transaction" });
      first.kill("SIGKILL");
      await new Promise((resolve) => first.once("exit", resolve));
    } finally {
      await peek.disconnect();
    }
    // Same instance id: its start fences the killed one and aborts its open transaction.
    const successor = relay({});
    try {
      await waitFor(async () => (await committedOffset(`relay-${input}`, input)) === orderIds.length, { timeoutMs: 90_000, what: "the successor to commit every input record" });
    } finally {
      successor.kill("SIGTERM");
      await new Promise((resolve) => successor.once("exit", resolve));
    }
    // Everything committed on the output, read to its end: each record once.
    const ids: (string | undefined)[] = [];
    await readToEnd(t.config, t.admin, [output], (r) => void ids.push(headerValue(r.headers, Headers.orderId)));
    expect(new Set(ids)).toEqual(new Set(orderIds));
    expect(ids).toHaveLength(orderIds.length);
  });
});
