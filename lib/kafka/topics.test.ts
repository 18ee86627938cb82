import { describe, expect, it } from "vitest";
import { compareTopics, desiredTopics } from "./topics.ts";

const catalogTopics = [
  { name: "orders.created", partitions: 6, retentionMs: 1000, cleanupPolicy: "delete", maxMessageBytes: 1048576 },
  { name: "orders.audit", partitions: 3, retentionMs: 2000, cleanupPolicy: "delete", maxMessageBytes: 1048576 },
];

describe("topic catalog application", () => {
  it("turns catalog entries into broker settings for a profile and prefix", () => {
    const desired = desiredTopics(catalogTopics, { replicationFactor: 3, minInsyncReplicas: 2 }, "p.");
    expect(desired[0]).toEqual({
      name: "p.orders.created",
      partitions: 6,
      replicationFactor: 3,
      configs: { "retention.ms": "1000", "cleanup.policy": "delete", "max.message.bytes": "1048576", "min.insync.replicas": "2" },
    });
  });

  it("finds missing topics and drift, and never proposes a deletion", () => {
    const desired = desiredTopics(catalogTopics, { replicationFactor: 1, minInsyncReplicas: 1 });
    const result = compareTopics(desired, [
      { name: "orders.audit", partitions: 2, replicationFactor: 3 },
      { name: "unrelated", partitions: 1, replicationFactor: 1 },
    ]);
    expect(result.missing.map((t) => t.name)).toEqual(["orders.created"]);
    expect(result.present).toEqual(["orders.audit"]);
    expect(result.drift).toEqual([
      { topic: "orders.audit", field: "partitions", desired: 3, actual: 2 },
      { topic: "orders.audit", field: "replication-factor", desired: 1, actual: 3 },
    ]);
  });
});
