import { createServer, type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import type { Admin } from "../../../lib/kafka/client.ts";
import { BrokerView, brokerReachable, dlqTopics, lagByGroup, lagOf, MARKER_GAP_MAX, watchedGroups, type Watermarks } from "./broker.ts";
import type { Gap } from "./markers.ts";

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
      { group: "orchestrator", topic: "orders.created", partition: 0, lag: 3, position: 7, high: 10 },
      { group: "orchestrator", topic: "orders.created", partition: 1, lag: 2, position: 3, high: 5 },
      { group: "orchestrator", topic: "orders.created", partition: 2, lag: 0, position: 12, high: 10 },
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

  /** A marker probe that says "only markers" for the gaps starting at `markerFrom`, and records what it was asked. */
  function fakeMarkers(markerFrom: readonly number[] = []) {
    const asked: Gap[][] = [];
    return {
      asked,
      onlyMarkers(gaps: readonly Gap[]) {
        asked.push([...gaps]);
        return Promise.resolve(new Set(gaps.filter((gap) => markerFrom.includes(gap.from))));
      },
    };
  }

  it("reads lag of the prefixed groups with names unprefixed, one request at a time", async () => {
    const { admin, calls } = fakeAdmin(
      {
        "p.payment": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "4" }] }, { topic: "other.payments.requested", partitions: [{ partition: 0, offset: "0" }] }],
        "p.orchestrator": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "9" }] }],
      },
      { "p.payments.requested": 9 },
    );
    const lags = await new BrokerView(admin, "p.", fakeMarkers()).lag();
    expect(lags).toEqual([
      { group: "orchestrator", topic: "payments.requested", partition: 0, lag: 0 },
      { group: "payment", topic: "payments.requested", partition: 0, lag: 5 },
    ]);
    expect(calls.filter((c) => c.startsWith("marks"))).toEqual(["marks p.payments.requested"]);
  });

  it("counts the records each DLQ topic holds", async () => {
    const { admin } = fakeAdmin({}, { "p.orders.created.dlq": 5 });
    const counts = await new BrokerView(admin, "p.", fakeMarkers()).dlq();
    expect(counts.map((c) => c.topic)).toEqual(dlqTopics);
    expect(counts.find((c) => c.topic === "orders.created.dlq")?.records).toBe(3);
    expect(counts.filter((c) => c.records > 0)).toHaveLength(1);
  });

  it("counts a short gap holding only transaction markers as no lag, once per partition and offset", async () => {
    const { admin } = fakeAdmin(
      {
        "p.payment": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "8" }] }],
        "p.orchestrator": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "8" }] }],
        "p.inventory": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "7" }] }],
        "p.notification": [{ topic: "p.payments.requested", partitions: [{ partition: 0, offset: "2" }] }],
      },
      { "p.payments.requested": 9 },
    );
    const markers = fakeMarkers([8]);
    const lags = await new BrokerView(admin, "p.", markers).lag();
    expect(Object.fromEntries(lags.map((l) => [l.group, l.lag]))).toEqual({ orchestrator: 0, payment: 0, inventory: 2, notification: 7 });
    // Gaps longer than MARKER_GAP_MAX are never read; the same gap of two groups is read once.
    expect(markers.asked).toEqual([[{ topic: "p.payments.requested", partition: 0, from: 8, high: 9 }, { topic: "p.payments.requested", partition: 0, from: 7, high: 9 }]]);
    expect(MARKER_GAP_MAX).toBeLessThan(7);
    expect(lags.every((l) => !("position" in l))).toBe(true);
  });
});

describe("broker reachability", () => {
  it("is true when any bootstrap broker accepts a connection, false when none does", async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const up = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await brokerReachable(up, 500)).toBe(true);
      expect(await brokerReachable(`127.0.0.1:1, ${up}`, 500)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(await brokerReachable(up, 500)).toBe(false);
    expect(await brokerReachable("127.0.0.1:1,127.0.0.1:2", 500)).toBe(false);
  });
});
