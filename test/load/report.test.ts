import { describe, expect, it } from "vitest";
import type { RampStep, RunResult } from "../../services/cli/loadgen.ts";
import { reportMarkdown, targets, type BenchResult, type Pipeline } from "./report.ts";
import { recordOperations, relayFigures, relayRatio, requestRates } from "./summary.ts";

const runResult = (p99: number, ended: Record<string, number>): RunResult => ({
  sent: 6000,
  accepted: 6000,
  errors: {},
  ended,
  reasons: {},
  unfinished: 0,
  latencyMs: { count: 6000, p50: p99 / 2, p90: p99, p99, p999: p99, max: p99, mean: p99 / 2 },
  throughput: 100,
  seconds: [{ second: 0, sent: 100, ended, p99 }],
  durationS: 60,
});

const step = (rate: number, sustainable: boolean): RampStep => ({ rate, result: runResult(sustainable ? 200 : 900, { completed: rate }), sustainable, why: sustainable ? "ok" : "p99 900 ms > 500 ms" });

const pipeline = (p99: number, rates: number[], withOps: boolean): Pipeline => ({
  ramps: rates.map((rate) => [step(rate, true), step(Math.round(rate * 1.2), false)]),
  sustainableRates: rates,
  sustainable: { median: rates[1] ?? 0, min: Math.min(...rates), max: Math.max(...rates) },
  fixed: runResult(p99, { completed: 5700, failed: 300 }),
  usage: { broker: { cpuSeconds: 40, peakRssMb: 700 }, order: { cpuSeconds: 20, peakRssMb: 180 }, mailsink: { cpuSeconds: 2, peakRssMb: 60 }, "load generator": { cpuSeconds: 10, peakRssMb: 300 } },
  fixedUsage: { broker: { cpuSeconds: 12, peakRssMb: 700 }, order: { cpuSeconds: 5.4, peakRssMb: 180 }, mailsink: { cpuSeconds: 0.6, peakRssMb: 60 }, "load generator": { cpuSeconds: 6, peakRssMb: 300 } },
  requests: { seconds: 64, rates: requestRates({ Produce: 0 }, { Produce: 6400, EndTxn: 640 }, 64, 6000) },
  ...(withOps ? { recordOps: { ...recordOperations({ "orders.created": 6000, "orders.completed": 5700 }, { orchestrator: 12_000 }, 6000), groupsCaughtUp: true } } : {}),
});

const backlogRun = (relay: string, lastTimestampMs: number, brokerCpuSeconds: number, records = 30_000) =>
  relayFigures({ relay, expected: 30_000, records, distinctKeys: records, firstTimestampMs: 0, lastTimestampMs, relayCpuSeconds: 6, brokerCpuSeconds, wallSeconds: 20 });

const result = (oursRecords = 30_000): BenchResult => {
  const ours = backlogRun("orderflow relay", 3_000, 1.5, oursRecords);
  const streams = backlogRun("Kafka Streams", 2_000, 1.2);
  return {
    date: "2026-12-03",
    durationS: 1740,
    machine: { cpus: 2, cpuModel: "test", memoryGb: 8, node: "v24" },
    settings: { fixedRate: 100, fixedS: 60, p99BoundMs: 500, stepS: 30, factor: 1.2, startRate: 50, bareStartRate: 100, repeats: 3, repeatStepsBelow: 3 },
    backlog: { records: 30_000, partitions: 6, ours, streams, ratio: relayRatio(ours, streams) },
    saga: pipeline(240, [500, 600, 720], true),
    bare: pipeline(80, [1000, 1200, 1200], false),
  };
};

describe("benchmark report", () => {
  it("judges issue 12's targets from the figures", () => {
    const verdicts = Object.fromEntries(targets(result()).map((t) => [t.target.split(":")[0], t]));
    expect(verdicts["saga"]?.met).toBe(true);
    expect(verdicts["saga at 100 orders/s for 60 s"]?.measured).toBe("240 ms");
    // (12 + 5.4 + 0.6) s over 6,000 orders, the load generator left out.
    expect(verdicts["CPU per order, all processes (broker, Redis, services, mail sink) ≤ 4 ms"]?.measured).toBe("3 ms");
    expect(verdicts["backlog relay, one transactional hop"]?.measured).toBe("10000 records/s");
    expect(verdicts["backlog relay"]?.met).toBe(true);
    expect(verdicts["record operations per order ≤ 18"]?.measured).toBe("3.95");
  });

  it("fails the backlog targets when our relay lost records, whatever its rate", () => {
    const backlog = targets(result(29_000)).filter((t) => t.target.startsWith("backlog"));
    expect(backlog.map((t) => t.met)).toEqual([false, false]);
    expect(backlog[0]?.measured).toContain("1000 records lost");
  });

  it("says per-order figures overstate when the saga's fixed run left orders unfinished", () => {
    const r = result();
    const overloaded = { ...r, saga: { ...r.saga, fixed: { ...r.saga.fixed, ended: { completed: 3000 }, unfinished: 3000 } } };
    const cpu = targets(overloaded).find((t) => t.target.startsWith("CPU per order"));
    expect(cpu?.met).toBe(false);
    expect(cpu?.measured).toBe("6 ms (3000 orders unfinished: overstated)");
    expect(reportMarkdown(overloaded, { latencyChart: "l.svg", rampChart: "r.svg", tuning: "" })).toContain("**3000 of 6000 orders had not ended when the fixed run gave up waiting**");
  });

  it("renders the new sections with their figures", () => {
    const md = reportMarkdown(result(), { latencyChart: "l.svg", rampChart: "r.svg", tuning: "" });
    expect(md).toContain("this run took **29 min**");
    expect(md).toContain("| **ours / Kafka Streams** |  | 0.67× | 1× | 1.25× |  |  |");
    expect(md).toContain("median 600 orders/s**, spread 500–720 (ramps: 500, 600, 720)");
    expect(md).toContain("| saga | 6000 | 3 | 4 | 6 | 0.6 |");
    expect(md).toContain("At the same rate the saga's p99 is **3.0×** the bare pipeline's.");
    expect(md).toContain("| Produce | 100 | 1.067 | 100 | 1.067 |");
    expect(md).toContain("| orders.created | 6000 | 1 |");
    expect(md).toContain("**3.95 record operations per order** (target ≤ 18).");
    expect(md.match(/^Ramp \d:/gm)).toHaveLength(6);
    expect(md).not.toContain("had not ended");
  });
});
