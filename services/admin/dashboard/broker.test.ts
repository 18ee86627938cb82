import { describe, expect, it } from "vitest";
import type { Admin } from "../../../lib/kafka/client.ts";
import { BrokerView, dlqTopics, lagByGroup, lagOf, watchedGroups, type Watermarks } from "./broker.ts";

const marks = (entries: Record<string, Record<number, Watermarks>>) =>
  new Map(Object.entries(entries).map(([topic, partitions]) => [topic, new Map(Object.entries(partitions).map(([p, w]) => [Number(p), w]))]));

describe("lag", () => {
  it("is the high watermark minus the committed offset; no commit lags by everything retained", () => {
    const lags = lagOf(
      "orchestrator",
      [
        { topic: "orders.created", partitions: [{ partition: 0, offset: "7" }, { partition: 1, offset: "-1" }, { partition: 2, offset: "12" }] },
        { topic: "unknown.topic", partitions: [{ partition: 0, offset: "1" }] },
      ],
      marks({ "orders.created": { 0: { low: 0, high: 10 }, 1: { low: 3, high: 5 }, 2: { low: 0, high: 10 } } }),
    );
    expect(lags).toEqual([
      { group: "orchestrator", topic: "orders.created", partition: 0, lag: 3 },
      { group: "orchestrator", topic: "orders.created", partition: 1, lag: 2 },
      { group: "orchestrator", topic: "orders.created", partition: 2, lag: 0 },
    ]);
  });

  it("sums per group, every watched group present", () => {
    const totals = lagByGroup([{ group: "payment", topic: "t", partition: 0, lag: 2 }, { group: "payment", topic: "t", partition: 1, lag: 3 }], watchedGroups);
    expect(totals["payment"]).toBe(5);
    expect(totals["orchestrator"]).toBe(0);
    expect(Object.keys(totals).sort()).toEqual([...watchedGroups].sort());
  });
});

describe("broker view", () => {
  /** An admin client that answers from tables and records its calls, refusing overlapping ones. */
  function fakeAdmin(committed: Record<string, { topic: string; partitions: { partition: number; offset: string }[] }[]>, highs: Record<string, number>) {
    const calls: string[] = [];
    let inFlight = 0;
    const enter = async <T>(name: string, answer: () => T): Promise<T> => {
      if (inFlight > 0) throw new Error("overlapping admin requests");
      inFlight += 1;
      calls.push(name);
      await Promise.resolve();
      inFlight -= 1;
      return answer();
    };
    const admin = {
      fetchOffsets: ({ groupId }: { groupId: string }) => enter(`offsets ${groupId}`, () => committed[groupId] ?? []),
      fetchTopicOffsets: (topic: string) => enter(`marks ${topic}`, () => [{ partition: 0, offset: "0", low: "2", high: String(highs[topic] ?? 2) }]),
    };
    return { admin: admin as unknown as Admin, calls };
  }

  it("reads lag of the prefixed groups with names unprefixed, one request at a time", async () => {
    const { admin, calls } = fakeAdmin(
      {
        "p.payment": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "4" }] }, { topic: "other.payments.requested", partitions: [{ partition: 0, offset: "0" }] }],
        "p.orchestrator": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "9" }] }],
      },
      { "p.payments.requested": 9 },
    );
    const lags = await new BrokerView(admin, "p.").lag();
    expect(lags).toEqual([
      { group: "orchestrator", topic: "payments.requested", partition: 0, lag: 0 },
      { group: "payment", topic: "payments.requested", partition: 0, lag: 5 },
    ]);
    expect(calls.filter((c) => c.startsWith("marks"))).toEqual(["marks p.payments.requested"]);
  });

  it("counts the records each DLQ topic holds", async () => {
    const { admin } = fakeAdmin({}, { "p.orders.created.dlq": 5 });
    const counts = await new BrokerView(admin, "p.").dlq();
    expect(counts.map((c) => c.topic)).toEqual(dlqTopics);
    expect(counts.find((c) => c.topic === "orders.created.dlq")?.records).toBe(3);
    expect(counts.filter((c) => c.records > 0)).toHaveLength(1);
  });
});
