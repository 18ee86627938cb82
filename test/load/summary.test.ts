import { describe, expect, it } from "vitest";
import { countBetween, cpuMsPerOrder, parseRequestCounts, recordOperations, relayFigures, relayRatio, repeatStartRate, requestRates, spreadOf, type RelayRun } from "./summary.ts";

const run = (overrides: Partial<RelayRun> = {}): RelayRun => ({
  relay: "ours",
  expected: 30_000,
  records: 30_000,
  distinctKeys: 30_000,
  firstTimestampMs: 1_000,
  lastTimestampMs: 11_000,
  relayCpuSeconds: 6,
  brokerCpuSeconds: 1.2,
  wallSeconds: 12,
  ...overrides,
});

describe("spreadOf", () => {
  it("gives the median and the range, for odd and even counts", () => {
    expect(spreadOf([90, 68, 75])).toEqual({ median: 75, min: 68, max: 90 });
    expect(spreadOf([10, 40, 20, 30])).toEqual({ median: 25, min: 10, max: 40 });
    expect(spreadOf([])).toEqual({ median: 0, min: 0, max: 0 });
  });
});

describe("repeatStartRate", () => {
  it("starts a few steps below what the first ramp sustained, never below the first start", () => {
    expect(repeatStartRate(518, { startRate: 100, factor: 1.2, stepsBelow: 3 })).toBe(300);
    expect(repeatStartRate(68, { startRate: 50, factor: 1.2, stepsBelow: 3 })).toBe(50);
    expect(repeatStartRate(0, { startRate: 50, factor: 1.2, stepsBelow: 3 })).toBe(50);
  });
});

describe("cpuMsPerOrder", () => {
  const usage = { broker: { cpuSeconds: 3, peakRssMb: 1 }, order: { cpuSeconds: 1, peakRssMb: 1 }, "load generator": { cpuSeconds: 2, peakRssMb: 1 } };
  it("adds up every process, or all but the ones left out", () => {
    expect(cpuMsPerOrder(usage, 1000)).toBe(6);
    expect(cpuMsPerOrder(usage, 1000, ["load generator"])).toBe(4);
    expect(cpuMsPerOrder(usage, 0)).toBe(0);
  });
});

describe("relayFigures", () => {
  it("takes the rate from the broker timestamps and the CPU per record", () => {
    const f = relayFigures(run());
    expect(f.recordsPerSecond).toBe(3000);
    expect(f.relayCpuMsPerRecord).toBe(0.2);
    expect(f.brokerCpuMsPerRecord).toBe(0.04);
    expect(f.problem).toBe("");
  });

  it("fails a run that lost or duplicated records", () => {
    expect(relayFigures(run({ records: 29_990, distinctKeys: 29_990 })).problem).toBe("10 records lost");
    expect(relayFigures(run({ records: 30_005, distinctKeys: 30_000 })).problem).toBe("5 records duplicated");
    expect(relayFigures(run({ records: 30_000, distinctKeys: 29_999 })).problem).toBe("1 records duplicated, 1 keys missing");
    expect(relayFigures(run({ records: 12_000, distinctKeys: 12_000, unfinished: "it exited with 1" })).problem).toBe("it exited with 1, 18000 records lost");
  });

  it("divides ours by the peer's", () => {
    const ours = relayFigures(run());
    const peer = relayFigures(run({ lastTimestampMs: 3_000, relayCpuSeconds: 3, brokerCpuSeconds: 0.6 }));
    expect(relayRatio(ours, peer)).toEqual({ recordsPerSecond: 0.2, relayCpuMsPerRecord: 2, brokerCpuMsPerRecord: 2 });
  });
});

describe("broker request counts", () => {
  const output = [
    "Trying to connect to JMX url: service:jmx:rmi:///jndi/rmi://127.0.0.1:1/jmxrmi",
    'time,"1796289676628"',
    'kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=11:Count,"120"',
    'kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=12:Count,"30"',
    'kafka.network:type=RequestMetrics,name=RequestsPerSec,request=EndTxn,version=5:Count,"40"',
    'kafka.network:type=RequestMetrics,name=ErrorsPerSec,request=Produce,error=NONE:Count,"150"',
    'kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Fetch,version=17:Count,"1.5E3"',
  ].join("\n");

  it("adds up the versions of each request and ignores other metrics", () => {
    expect(parseRequestCounts(output)).toEqual({ Produce: 150, EndTxn: 40, Fetch: 1500 });
  });

  it("gives rates per second and per order between two readings", () => {
    const rates = requestRates({ Produce: 100, Fetch: 10 }, { Produce: 700, Fetch: 70, EndTxn: 30 }, 60, 6000);
    expect(rates.find((r) => r.request === "Produce")).toEqual({ request: "Produce", count: 600, perSecond: 10, perOrder: 0.1 });
    expect(rates.find((r) => r.request === "EndTxn")?.count).toBe(30);
    expect(rates.find((r) => r.request === "WriteTxnMarkers")?.count).toBe(0);
  });
});

describe("record operations", () => {
  it("counts sorted offsets in a half-open range (markers leave gaps)", () => {
    const offsets = [0, 1, 3, 4, 6, 7];
    expect(countBetween(offsets, 1, 6)).toBe(3);
    expect(countBetween(offsets, 0, Infinity)).toBe(6);
    expect(countBetween(offsets, 5, 5)).toBe(0);
    expect(countBetween(offsets, 8, 20)).toBe(0);
  });

  it("divides records produced and consumed by the orders, largest first, empty ones left out", () => {
    const ops = recordOperations({ "orders.created": 100, "orders.completed": 95, "orders.dlq": 0 }, { orchestrator: 200, projections: 300 }, 100);
    expect(ops.produced).toEqual([
      { name: "orders.created", records: 100, perOrder: 1 },
      { name: "orders.completed", records: 95, perOrder: 0.95 },
    ]);
    expect(ops.consumed.map((c) => c.name)).toEqual(["projections", "orchestrator"]);
    expect(ops.producedPerOrder).toBe(1.95);
    expect(ops.consumedPerOrder).toBe(5);
    expect(ops.perOrder).toBe(6.95);
  });
});
