/**
 * The benchmark's Markdown report: the issue's targets and whether they were met, the backlog relay
 * test (ours against Kafka Streams), the fixed-rate runs with CPU per order, the repeated ramps with
 * their median and spread, the broker's request rates, the record operations per order, CPU and
 * memory per process, the profiles, the charts, and the tuning log (bench/tuning.md) that says
 * what was changed and what it did.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { RampStep, RunResult } from "../../services/cli/loadgen.ts";
import type { BacklogResult } from "./backlog.ts";
import { lineChart } from "./chart.ts";
import type { ProfileSummary } from "./profile.ts";
import { cpuMsPerOrder, type RecordOperations, type RelayFigures, type RequestRate, type Spread, type Usage } from "./summary.ts";

/** The name the bench process (HTTP client or producer, the tail of the end topics) goes by. */
export const loadGenerator = "load generator";

/** Processes that are not one of the pipeline's services or relays. */
const notServices = ["broker", "redis", "mailsink", loadGenerator];

/** What one pipeline measured. */
export interface Pipeline {
  /** One ramp per repeat. */
  readonly ramps: readonly (readonly RampStep[])[];
  readonly sustainableRates: readonly number[];
  readonly sustainable: Spread;
  readonly fixed: RunResult;
  /** CPU and peak RSS over the ramps and the fixed run together. */
  readonly usage: Usage;
  /** CPU over the fixed run alone. */
  readonly fixedUsage: Usage;
  /** The broker's requests over the fixed run (JMX). */
  readonly requests: { readonly seconds: number; readonly rates: readonly RequestRate[] };
  /** Measured over the saga's fixed run. */
  readonly recordOps?: RecordOperations & { readonly groupsCaughtUp: boolean };
}

/** The saga's services profiled at a fixed rate (see profile.ts). */
export interface SagaProfile {
  readonly rate: number;
  readonly durationS: number;
  readonly processes: Readonly<Record<string, ProfileSummary>>;
}

export interface BenchResult {
  readonly date: string;
  /** How long the whole run took, s. */
  readonly durationS: number;
  readonly machine: { cpus: number; cpuModel: string; memoryGb: number; node: string };
  readonly settings: {
    readonly fixedRate: number;
    readonly fixedS: number;
    readonly p99BoundMs: number;
    readonly stepS: number;
    readonly factor: number;
    readonly startRate: number;
    readonly bareStartRate: number;
    readonly repeats: number;
    readonly repeatStepsBelow: number;
    /** The client settings the run used, for the record. */
    readonly producer?: unknown;
    readonly consumer?: unknown;
    readonly transactions?: unknown;
  };
  readonly backlog: BacklogResult;
  readonly saga: Pipeline;
  readonly bare: Pipeline;
  readonly profile?: SagaProfile;
}

/** Orders (or bare journeys) that ended in a run. */
export const endedOrders = (run: RunResult) => Object.values(run.ended).reduce((a, b) => a + b, 0);

/** The figures issue 12's targets are judged by. */
export function targets(r: BenchResult) {
  const services = Object.entries(r.saga.usage).filter(([name]) => !notServices.includes(name));
  const maxRss = Math.max(0, ...services.map(([, u]) => u.peakRssMb));
  const cpu = cpuMsPerOrder(r.saga.fixedUsage, endedOrders(r.saga.fixed), [loadGenerator]);
  const ours = r.backlog.ours;
  const ops = r.saga.recordOps;
  const unfinished = r.saga.fixed.unfinished === 0 ? "" : ` (${r.saga.fixed.unfinished} orders unfinished: overstated)`;
  const spread = (s: Spread) => `median ${s.median} (${s.min}–${s.max})`;
  return [
    { target: "saga: highest sustainable rate (every order ended, p99 < 500 ms) ≥ 500 orders/s", measured: `${spread(r.saga.sustainable)} orders/s`, met: r.saga.sustainable.median >= 500 },
    { target: `saga at ${r.settings.fixedRate} orders/s for ${r.settings.fixedS} s: p99 ≤ 250 ms`, measured: `${r.saga.fixed.latencyMs.p99} ms`, met: r.saga.fixed.latencyMs.p99 <= 250 },
    { target: "CPU per order, all processes (broker, Redis, services, mail sink) ≤ 4 ms", measured: `${cpu} ms${unfinished}`, met: r.saga.fixed.unfinished === 0 && cpu > 0 && cpu <= 4 },
    { target: "backlog relay, one transactional hop: ≥ 7,000 records/s", measured: `${ours.recordsPerSecond} records/s${ours.problem === "" ? "" : ` (failed run: ${ours.problem})`}`, met: ours.problem === "" && ours.recordsPerSecond >= 7000 },
    { target: "backlog relay: broker CPU ≤ 0.06 ms per record", measured: `${ours.brokerCpuMsPerRecord} ms`, met: ours.problem === "" && ours.brokerCpuMsPerRecord <= 0.06 },
    { target: "record operations per order ≤ 18", measured: ops === undefined ? "not measured" : `${ops.perOrder}${unfinished}`, met: r.saga.fixed.unfinished === 0 && ops !== undefined && ops.perOrder <= 18 },
    { target: "each service's peak RSS < 250 MB", measured: `${maxRss} MB at most`, met: maxRss < 250 },
  ];
}

const row = (cells: readonly (string | number)[]) => `| ${cells.join(" | ")} |`;

function rampTable(steps: readonly RampStep[]): string[] {
  return [
    row(["offered/s", "ended/s", "p50 ms", "p99 ms", "max ms", "unfinished", "verdict"]),
    row(["---:", "---:", "---:", "---:", "---:", "---:", "---"]),
    ...steps.map((s) => row([s.rate, s.result.throughput, s.result.latencyMs.p50, s.result.latencyMs.p99, s.result.latencyMs.max, s.result.unfinished, `${s.sustainable ? "sustained" : "not sustained"}: ${s.why}`])),
  ];
}

function rampsSection(name: string, unit: string, p: Pipeline): string[] {
  return [
    `${name} — highest sustainable rate **median ${p.sustainable.median} ${unit}/s**, spread ${p.sustainable.min}–${p.sustainable.max} (ramps: ${p.sustainableRates.join(", ")}):`,
    "",
    ...p.ramps.flatMap((ramp, i) => [`Ramp ${i + 1}:`, "", ...rampTable(ramp), ""]),
  ];
}

function fixedRow(name: string, r: RunResult): string {
  const l = r.latencyMs;
  const ended = Object.entries(r.ended).map(([k, v]) => `${k} ${v}`).join(", ");
  return row([name, r.accepted, ended, l.p50, l.p99, l.p999, l.max, r.unfinished]);
}

export function backlogSection(b: BacklogResult): string[] {
  const relayRow = (f: RelayFigures) =>
    row([f.relay, `${f.records} of ${f.expected} (${f.distinctKeys} distinct)`, f.recordsPerSecond, f.relayCpuMsPerRecord, f.brokerCpuMsPerRecord, f.wallSeconds, f.problem === "" ? "every record once" : `**failed run: ${f.problem}**`]);
  return [
    `## Backlog relay: one transactional hop over ${b.records.toLocaleString("en")} records`,
    "",
    `A backlog of ${b.records.toLocaleString("en")} OrderCreated records (encoded as the bench's orders are) on a ${b.partitions}-partition topic, relayed by one process into a fresh ${b.partitions}-partition topic with \`message.timestamp.type=LogAppendTime\`: our relay (test/load/relay.ts, the services' runtime, \`RELAY_STAGES="in>out"\`) and Kafka Streams (test/load/streams/StreamsRelay.java: \`builder.stream(in).to(out)\`, exactly_once_v2, one stream thread, ByteArray serdes, otherwise its defaults; same version as the broker), one after the other over the same input in the same run. Records/s from the output records' broker timestamps, first to last; relay CPU from /proc of its process over its whole life until its group had committed the backlog (**start-up included**: JVM or Node and tsx); broker CPU over the same time. The output is read back (read_committed) and counted; a relay that lost or duplicated a record is a failed run.`,
    "",
    row(["relay", "records relayed", "records/s", "relay CPU ms/record", "broker CPU ms/record", "wall s (start to done)", "verdict"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---"]),
    relayRow(b.ours),
    relayRow(b.streams),
    row(["**ours / Kafka Streams**", "", `${b.ratio.recordsPerSecond}×`, `${b.ratio.relayCpuMsPerRecord}×`, `${b.ratio.brokerCpuMsPerRecord}×`, "", ""]),
    "",
    "Targets (issue 12): ≥ 7,000 records/s and broker CPU ≤ 0.06 ms per record.",
    "",
  ];
}

/** A warning when the fixed run left orders unfinished: its per-order figures then count work for orders not in the count. */
function unfinishedWarning(p: Pipeline): string[] {
  return p.fixed.unfinished === 0
    ? []
    : [`**${p.fixed.unfinished} of ${p.fixed.accepted} orders had not ended when the fixed run gave up waiting**: per-order figures divide work done for every accepted order by the ${endedOrders(p.fixed)} that ended, and overstate.`, ""];
}

export function cpuPerOrderSection(r: BenchResult): string[] {
  const line = (name: string, p: Pipeline) => {
    const orders = endedOrders(p.fixed);
    return row([name, orders, cpuMsPerOrder(p.fixedUsage, orders, [loadGenerator]), cpuMsPerOrder(p.fixedUsage, orders), p.fixedUsage[loadGenerator]?.cpuSeconds ?? "", p.fixedUsage["mailsink"]?.cpuSeconds ?? ""]);
  };
  return [
    `CPU per order over the fixed run, every process counted (broker, Redis, the services or relays, the mail sink), without and with the load generator (this process: HTTP client or producer and the tail of the end topics), which shares the two cores:`,
    "",
    row(["pipeline", "orders ended", "CPU ms per order", "with the load generator", "load generator CPU s", "mail sink CPU s"]),
    row(["---", "---:", "---:", "---:", "---:", "---:"]),
    line("saga", r.saga),
    line("bare pipeline (per four-hop journey)", r.bare),
    "",
    ...unfinishedWarning(r.saga),
  ];
}

export function requestsSection(r: BenchResult): string[] {
  const names = r.saga.requests.rates.map((rate) => rate.request);
  const of = (p: Pipeline, request: string) => p.requests.rates.find((rate) => rate.request === request);
  return [
    `## Broker requests over the fixed run (${r.settings.fixedRate} orders/s)`,
    "",
    `Requests the broker handled, from its JMX counters (\`kafka.network:type=RequestMetrics,name=RequestsPerSec,request=…\`, Count, all API versions), read with Kafka's JmxTool before and after the run (saga ${r.saga.requests.seconds} s, bare ${r.bare.requests.seconds} s apart). WriteTxnMarkers are the transaction coordinator's requests to the partition leaders (here the same broker).`,
    "",
    row(["request", "saga /s", "saga per order", "bare /s", "bare per journey"]),
    row(["---", "---:", "---:", "---:", "---:"]),
    ...names.map((request) => row([request, of(r.saga, request)?.perSecond ?? "", of(r.saga, request)?.perOrder ?? "", of(r.bare, request)?.perSecond ?? "", of(r.bare, request)?.perOrder ?? ""])),
    "",
  ];
}

export function recordOpsSection(ops: RecordOperations & { groupsCaughtUp: boolean }): string[] {
  return [
    `## Record operations per order (measured over the saga's fixed run, ${ops.orders} orders ended)`,
    "",
    "Produced: the records each topic gained, counted by reading every partition from its high watermark at the start of the run to the one at the end (`read_uncommitted`: a consumer is never handed transaction markers, which take offsets too, so they are left out; aborted records are counted). Consumed: the data records between each consumer group's committed offsets at the start and at the end of the run" +
      (ops.groupsCaughtUp ? ", after every group had committed past the run's last record." : ", **but not every group had committed past the run's last record within 30 s** (the figure is low by what they had left)."),
    "",
    row(["produced on topic", "records", "per order"]),
    row(["---", "---:", "---:"]),
    ...ops.produced.map((p) => row([p.name, p.records, p.perOrder])),
    row(["**all topics**", "", `**${ops.producedPerOrder}**`]),
    "",
    row(["consumed by group", "records", "per order"]),
    row(["---", "---:", "---:"]),
    ...ops.consumed.map((c) => row([c.name, c.records, c.perOrder])),
    row(["**all groups**", "", `**${ops.consumedPerOrder}**`]),
    "",
    `**${ops.perOrder} record operations per order** (target ≤ 18).`,
    "",
  ];
}

/** Shares of each service's busy CPU time by part of the system, and each one's costliest functions. */
function profileSection(p: SagaProfile): string[] {
  const names = Object.keys(p.processes);
  const parts = [...new Set(names.flatMap((name) => Object.keys(p.processes[name]?.parts ?? {})))];
  const total = (part: string) => names.reduce((sum, name) => sum + (p.processes[name]?.parts[part] ?? 0), 0);
  parts.sort((a, b) => total(b) - total(a));
  return [
    `## Where the CPU goes (the saga at ${p.rate} orders/s for ${p.durationS} s, profiled)`,
    "",
    "Services: per cent of each one's busy CPU time under `node --cpu-prof` (idle left out), by the part of the system that asked for the work: a sample counts for the library or module of ours nearest to it on the stack, so a socket write counts for the client that wrote. Broker: per cent of its Java execution samples (Java Flight Recorder) by the kind of work; its busy CPU seconds are read from /proc.",
    "",
    row(["part", ...names]),
    row(["---", ...names.map(() => "---:")]),
    row(["busy CPU s", ...names.map((name) => p.processes[name]?.busySeconds ?? "")]),
    ...parts.map((part) => row([part, ...names.map((name) => p.processes[name]?.parts[part] ?? "")])),
    "",
    "Costliest functions by own time:",
    "",
    ...names.map((name) => `- ${name}: ${(p.processes[name]?.topFunctions ?? []).map((f) => `\`${f.name}\` ${f.share}%`).join(", ")}`),
    "",
  ];
}

/** The report's Markdown; chart paths are relative to it. */
export function reportMarkdown(r: BenchResult, extra: { latencyChart: string; rampChart: string; tuning: string }): string {
  const usageNames = [...new Set([...Object.keys(r.saga.usage), ...Object.keys(r.bare.usage)])];
  const s = r.settings;
  const p99Ratio = r.bare.fixed.latencyMs.p99 > 0 ? (r.saga.fixed.latencyMs.p99 / r.bare.fixed.latencyMs.p99).toFixed(1) : "—";
  const lines = [
    `# orderflow benchmark — ${r.date}`,
    "",
    `Machine: ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memoryGb} GB, Node ${r.machine.node}. One local broker, production settings (acks=all, idempotent producers, transactional consume → produce, read_committed). Written by \`make bench\` (test/load/bench.ts); this run took **${Math.round(r.durationS / 60)} min**.`,
    "",
    "Latency runs from each order's scheduled send time (open loop: a stall is not hidden) to its end read from Kafka: the terminal topics for the saga, the fourth relay topic for the bare pipeline (the same client, settings and transactional runner over the same four hops, no business logic).",
    "",
    "## Targets (issue 12)",
    "",
    row(["target", "measured", "met"]),
    row(["---", "---", "---"]),
    ...targets(r).map((t) => row([t.target, t.measured, t.met ? "yes" : "**no**"])),
    "",
    ...backlogSection(r.backlog),
    `## ${s.fixedRate} orders/s for ${s.fixedS} s`,
    "",
    row(["pipeline", "accepted", "ended", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "unfinished"]),
    row(["---", "---:", "---", "---:", "---:", "---:", "---:", "---:"]),
    fixedRow("saga", r.saga.fixed),
    fixedRow("bare pipeline", r.bare.fixed),
    "",
    `At the same rate the saga's p99 is **${p99Ratio}×** the bare pipeline's.`,
    "",
    ...cpuPerOrderSection(r),
    `![p99 per second](${extra.latencyChart})`,
    "",
    `## Ramps (${s.repeats} per pipeline, ×${s.factor} every ${s.stepS} s; sustainable = every order ended and p99 < ${s.p99BoundMs} ms)`,
    "",
    `The first ramp starts at ${s.startRate}/s (saga) or ${s.bareStartRate}/s (bare pipeline); the others ${s.repeatStepsBelow} steps below the rate the first sustained (never lower than the first's start), so that they do not walk again through rates far below the limit. Each ramp stops at its first step that is not sustained; a ramp whose first step is not sustained steps down (÷${s.factor}) until one is, to a third of its start at most (0 when none is).`,
    "",
    ...rampsSection("Saga", "orders", r.saga),
    ...rampsSection("Bare pipeline", "records", r.bare),
    `![ramp](${extra.rampChart})`,
    "",
    ...requestsSection(r),
    ...(r.saga.recordOps === undefined ? [] : [...recordOpsSection(r.saga.recordOps), ...unfinishedWarning(r.saga)]),
    "## CPU and memory per process",
    "",
    row(["process", "saga CPU s (ramps + fixed)", "saga CPU s (fixed)", "saga peak RSS MB", "bare CPU s (ramps + fixed)", "bare CPU s (fixed)", "bare peak RSS MB"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---:"]),
    ...usageNames.map((name) =>
      row([name, r.saga.usage[name]?.cpuSeconds ?? "", r.saga.fixedUsage[name]?.cpuSeconds ?? "", r.saga.usage[name]?.peakRssMb ?? "", r.bare.usage[name]?.cpuSeconds ?? "", r.bare.fixedUsage[name]?.cpuSeconds ?? "", r.bare.usage[name]?.peakRssMb ?? ""]),
    ),
    "",
    ...(r.profile === undefined ? [] : profileSection(r.profile)),
    ...(extra.tuning === "" ? [] : [extra.tuning.trim(), ""]),
  ];
  return `${lines.join("\n")}\n`;
}

/** Writes `<base>.json`, the two charts and `<base>.md` (with the tuning log from `tuningPath`). */
export function renderResults(base: string, r: BenchResult, tuningPath: string): void {
  writeFileSync(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
  const p99PerSecond = (run: RunResult) => run.seconds.flatMap((s) => (s.p99 === undefined ? [] : [[s.second, s.p99] as const]));
  writeFileSync(
    `${base}-latency.svg`,
    lineChart({
      title: `p99 latency per second at ${r.settings.fixedRate} orders/s`,
      xLabel: "seconds",
      yLabel: "p99 ms (scheduled send → end)",
      series: [
        { name: "saga", points: p99PerSecond(r.saga.fixed) },
        { name: "bare pipeline", points: p99PerSecond(r.bare.fixed) },
      ],
    }),
  );
  const rampSeries = (name: string, p: Pipeline) => p.ramps.map((ramp, i) => ({ name: `${name} ${i + 1}`, points: ramp.map((s) => [s.rate, s.result.throughput] as const) }));
  const offered = [...r.bare.ramps, ...r.saga.ramps].flat().map((s) => s.rate);
  writeFileSync(
    `${base}-ramp.svg`,
    lineChart({
      title: "Ramps: orders ended per second against orders offered",
      xLabel: "offered orders/s",
      yLabel: "ended orders/s",
      series: [...rampSeries("saga", r.saga), ...rampSeries("bare", r.bare), { name: "offered", points: [[0, 0], [Math.max(0, ...offered), Math.max(0, ...offered)]] }],
    }),
  );
  const name = basename(base);
  writeFileSync(`${base}.md`, reportMarkdown(r, { latencyChart: `${name}-latency.svg`, rampChart: `${name}-ramp.svg`, tuning: existsSync(tuningPath) ? readFileSync(tuningPath, "utf8") : "" }));
}
