/**
 * The 3-node KRaft cluster (RF 3, min ISR 2): SIGKILL the leader of a partition while an acks=all
 * producer is writing, and show that every record the broker acknowledged can be read back.
 * Runs when the tests start the local broker themselves (not against an external one).
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createLogger } from "../../lib/log.ts";
import { createKafka, createProducer, type Admin, type Producer } from "../../lib/kafka/client.ts";
import { testConfig, readRecords } from "../harness/kafka.ts";
import { waitFor } from "../harness/wait.ts";

const kafkaScript = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "infra", "kafka", "kafka.sh");
const kafkaSh = (...args: string[]) => execFileSync("bash", [kafkaScript, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

describe.runIf(inject("localKafka"))("3-node cluster", () => {
  let admin: Admin;
  let producer: Producer;
  let brokers: string;

  beforeAll(() => {
    kafkaSh("start", "cluster");
    brokers = kafkaSh("bootstrap", "cluster").trim();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await admin?.disconnect();
    kafkaSh("wipe", "cluster");
  });

  it("loses no acknowledged record when the partition leader is killed under acks=all", async () => {
    const config = testConfig("cluster-test", { KAFKA_BROKERS: brokers, KAFKA_DELIVERY_TIMEOUT_MS: "60000" });
    const log = createLogger("cluster-test", config.logLevel);
    const kafka = createKafka(config, log);
    admin = kafka.admin();
    await admin.connect();
    const topic = `${config.topicPrefix}durable`;
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: "min.insync.replicas", value: "2" }] }],
    });
    // A long-lived admin client keeps asking a killed broker and times out, so each probe uses a fresh one.
    const leaderOf = async () => {
      const probe = kafka.admin();
      await probe.connect();
      try {
        return (await probe.fetchTopicMetadata({ topics: [topic] }))[0]?.partitions[0]?.leader ?? -1;
      } finally {
        await probe.disconnect();
      }
    };
    const leader = await waitFor(async () => ((await leaderOf()) > 0 ? leaderOf() : undefined), { what: "a leader" });

    producer = createProducer(kafka, config);
    await producer.connect();
    const acked = new Set<string>();
    const failed: string[] = [];
    const sendBatch = async (size: number) => {
      const ids = Array.from({ length: size }, () => randomUUID());
      await Promise.all(
        ids.map((id) =>
          producer.send({ topic, messages: [{ key: id, value: Buffer.from(id) }] }).then(
            () => acked.add(id),
            () => failed.push(id),
          ),
        ),
      );
    };

    for (let i = 0; i < 10; i += 1) await sendBatch(50);
    kafkaSh("node-stop", String(leader), "--kill");
    const [sendingDuringFailover] = await Promise.all([
      (async () => {
        for (let i = 0; i < 30; i += 1) await sendBatch(50);
      })(),
      waitFor(async () => {
        const now = await leaderOf();
        return now > 0 && now !== leader ? now : undefined;
      }, { timeoutMs: 60_000, what: "a new leader" }),
    ]);
    expect(sendingDuringFailover).toBeUndefined();
    kafkaSh("node-start", String(leader));

    expect(acked.size + failed.length).toBe(2000);
    expect(acked.size).toBeGreaterThan(1500);
    const records = await readRecords({ config, kafka }, topic, acked.size, 60_000);
    const read = new Set(records.map((r) => r.value?.toString()));
    const lost = [...acked].filter((id) => !read.has(id));
    expect(lost).toEqual([]);
  });
});
