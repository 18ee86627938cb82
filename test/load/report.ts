/**
 * The benchmark's Markdown report: the targets and whether they were met, the ramps, the fixed-rate
 * runs, CPU and memory per process, the charts, and the tuning log (bench/tuning.md) that says what
 * was changed and what it did.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { RampStep, RunResult } from "../../services/cli/loadgen.ts";
import { lineChart } from "./chart.ts";
import type { ProfileSummary } from "./profile.ts";

interface Pipeline {
  readonly ramp: readonly RampStep[];
  readonly sustainableRate: number;
  readonly fixed: RunResult;
  readonly usage: Readonly<Record<string, { cpuSeconds: number; peakRssMb: number }>>;
}

/** The saga's services profiled at a fixed rate (see profile.ts). */
export interface SagaProfile {
  readonly rate: number;
  readonly durationS: number;
  readonly processes: Readonly<Record<string, ProfileSummary>>;
}

export interface BenchResult {
  readonly date: string;
  readonly machine: { cpus: number; cpuModel: string; memoryGb: number; node: string };
  readonly settings: { readonly fixedRate: number; readonly fixedS: number; readonly p99BoundMs: number; readonly stepS: number };
  readonly saga: Pipeline;
  readonly bare: Pipeline;
  /** Absent in results written before the profile pass was part of the benchmark. */
  readonly profile?: SagaProfile;
}

/** The figures the issue's targets are judged by. */
export function targets(r: BenchResult) {
  const efficiency = r.bare.sustainableRate > 0 ? r.saga.sustainableRate / r.bare.sustainableRate : 0;
  const p99Ratio = r.bare.fixed.latencyMs.p99 > 0 ? r.saga.fixed.latencyMs.p99 / r.bare.fixed.latencyMs.p99 : Infinity;
  const services = Object.entries(r.saga.usage).filter(([name]) => !["broker", "redis", "mailsink", "load generator"].includes(name));
  const maxRss = Math.max(0, ...services.map(([, u]) => u.peakRssMb));
  return [
    { target: "sustained ≥ 2,000 orders/s with p99 < 500 ms", measured: `${r.saga.sustainableRate} orders/s`, met: r.saga.sustainableRate >= 2000 },
    { target: "saga ≥ 50% of the bare pipeline's sustainable rate", measured: `${Math.round(efficiency * 100)}% (${r.saga.sustainableRate} / ${r.bare.sustainableRate})`, met: efficiency >= 0.5 },
    { target: `p99 at ${r.settings.fixedRate}/s ≤ 3× the bare pipeline's`, measured: `${r.saga.fixed.latencyMs.p99} ms vs ${r.bare.fixed.latencyMs.p99} ms (${p99Ratio.toFixed(1)}×)`, met: p99Ratio <= 3 },
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

function fixedRow(name: string, r: RunResult): string {
  const l = r.latencyMs;
  const ended = Object.entries(r.ended).map(([k, v]) => `${k} ${v}`).join(", ");
  return row([name, r.accepted, ended, l.p50, l.p99, l.p999, l.max, r.unfinished]);
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

/** Writes the report to `path`; chart paths are relative to it. */
export function writeReport(path: string, r: BenchResult, extra: { latencyChart: string; rampChart: string; tuning: string }): void {
  const usageNames = [...new Set([...Object.keys(r.saga.usage), ...Object.keys(r.bare.usage)])];
  const lines = [
    `# orderflow benchmark — ${r.date}`,
    "",
    `Machine: ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memoryGb} GB, Node ${r.machine.node}. One local broker, production settings (acks=all, idempotent producers, transactional consume → produce, read_committed). Written by \`make bench\` (test/load/bench.ts).`,
    "",
    "Latency runs from each order's scheduled send time (open loop: a stall is not hidden) to its end read from Kafka: the terminal topics for the saga, the fourth relay topic for the bare pipeline (the same client, settings and transactional runner over the same four hops, no business logic).",
    "",
    "## Targets",
    "",
    row(["target", "measured", "met"]),
    row(["---", "---", "---"]),
    ...targets(r).map((t) => row([t.target, t.measured, t.met ? "yes" : "**no**"])),
    "",
    `## ${r.settings.fixedRate} orders/s for ${r.settings.fixedS} s`,
    "",
    row(["pipeline", "accepted", "ended", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "unfinished"]),
    row(["---", "---:", "---", "---:", "---:", "---:", "---:", "---:"]),
    fixedRow("saga", r.saga.fixed),
    fixedRow("bare pipeline", r.bare.fixed),
    "",
    `![p99 per second](${extra.latencyChart})`,
    "",
    `## Ramp (×1.5 every ${r.settings.stepS} s; sustainable = every order ended and p99 < ${r.settings.p99BoundMs} ms)`,
    "",
    `Saga — highest sustainable rate **${r.saga.sustainableRate} orders/s**:`,
    "",
    ...rampTable(r.saga.ramp),
    "",
    `Bare pipeline — highest sustainable rate **${r.bare.sustainableRate} records/s**:`,
    "",
    ...rampTable(r.bare.ramp),
    "",
    `![ramp](${extra.rampChart})`,
    "",
    "## CPU and memory per process (ramp and fixed run together)",
    "",
    row(["process", "saga CPU s", "saga peak RSS MB", "bare CPU s", "bare peak RSS MB"]),
    row(["---", "---:", "---:", "---:", "---:"]),
    ...usageNames.map((name) => row([name, r.saga.usage[name]?.cpuSeconds ?? "", r.saga.usage[name]?.peakRssMb ?? "", r.bare.usage[name]?.cpuSeconds ?? "", r.bare.usage[name]?.peakRssMb ?? ""])),
    "",
    ...(r.profile === undefined ? [] : profileSection(r.profile)),
    ...(extra.tuning === "" ? [] : [extra.tuning.trim(), ""]),
  ];
  writeFileSync(path, `${lines.join("\n")}\n`);
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
  writeFileSync(
    `${base}-ramp.svg`,
    lineChart({
      title: "Ramp: orders ended per second against orders offered",
      xLabel: "offered orders/s",
      yLabel: "ended orders/s",
      series: [
        { name: "saga", points: r.saga.ramp.map((s) => [s.rate, s.result.throughput] as const) },
        { name: "bare pipeline", points: r.bare.ramp.map((s) => [s.rate, s.result.throughput] as const) },
        { name: "offered", points: r.bare.ramp.map((s) => [s.rate, s.rate] as const) },
      ],
    }),
  );
  const name = basename(base);
  writeReport(`${base}.md`, r, { latencyChart: `${name}-latency.svg`, rampChart: `${name}-ramp.svg`, tuning: existsSync(tuningPath) ? readFileSync(tuningPath, "utf8") : "" });
}
