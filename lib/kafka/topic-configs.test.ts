import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeTopicConfigs, findKafkaLibs, parseTopicDescribe } from "./topic-configs.ts";
import { compareTopics } from "./topics.ts";

describe("topic configs", () => {
  it("parses TopicCommand's describe output", () => {
    const output = [
      "Topic: orders.created\tTopicId: abc\tPartitionCount: 6\tReplicationFactor: 1\tConfigs: cleanup.policy=delete,min.insync.replicas=1,retention.ms=604800000",
      "\tTopic: orders.created\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1",
      "Topic: bare\tTopicId: def\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: ",
    ].join("\n");
    const configs = parseTopicDescribe(output);
    expect(configs.get("orders.created")).toEqual({ "cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": "604800000" });
    expect(configs.get("bare")).toEqual({});
    expect(configs.size).toBe(2);
  });

  it("reports config drift only where configs could be read", () => {
    const desired = [{ name: "t", partitions: 1, replicationFactor: 1, configs: { "retention.ms": "100", "cleanup.policy": "delete" } }];
    expect(compareTopics(desired, [{ name: "t", partitions: 1, replicationFactor: 1 }]).drift).toEqual([]);
    expect(compareTopics(desired, [{ name: "t", partitions: 1, replicationFactor: 1, configs: { "retention.ms": "5" } }]).drift).toEqual([
      { topic: "t", field: "config:retention.ms", desired: "100", actual: "5" },
      { topic: "t", field: "config:cleanup.policy", desired: "delete", actual: "(default)" },
    ]);
  });

  it("finds only complete jar folders, newest first, and reads nothing without them", async () => {
    const cache = mkdtempSync(join(tmpdir(), "of-cache-"));
    expect(findKafkaLibs(join(cache, "absent"))).toBeUndefined();
    mkdirSync(join(cache, "kafka-4.1.0", "libs"), { recursive: true });
    mkdirSync(join(cache, "kafka-4.3.1", "libs"), { recursive: true });
    mkdirSync(join(cache, "kafka-9.9.9", "libs"), { recursive: true });
    writeFileSync(join(cache, "kafka-4.1.0", ".complete"), "");
    writeFileSync(join(cache, "kafka-4.3.1", ".complete"), "");
    expect(findKafkaLibs(cache)).toBe(join(cache, "kafka-4.3.1", "libs"));
    expect(await describeTopicConfigs(undefined, "127.0.0.1:9092")).toBeUndefined();
  });
});
