/**
 * `orderflow monitor` — a live terminal view of the running system, redrawn every second with
 * plain ANSI: orders per second by outcome, latency percentiles, consumer lag per group, dead
 * letters, the payment breaker and service health. Its data is the dashboard snapshot the admin
 * process serves at GET <ADMIN_URL>/dashboard/api/snapshot; `--once` prints one snapshot and exits.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Command, Option } from "commander";
import { messageOf } from "../../lib/errors.ts";
import { getAdminJson } from "./admin-client.ts";
import { emit, output, wholeNumberOption, type CliContext, type ContextFactory } from "./context.ts";

/** Where the admin process serves the snapshot. */
export const SNAPSHOT_PATH = "/dashboard/api/snapshot";

/** One second of throughput: orders created and finished in it. */
export interface ThroughputSecond {
  readonly second: number;
  readonly created: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** The dashboard snapshot, as far as the monitor reads it. */
export interface Snapshot {
  readonly at: string | number;
  readonly windowSeconds: number;
  readonly throughput: readonly ThroughputSecond[];
  readonly totals: { readonly created: number; readonly completed: number; readonly failed: number; readonly cancelled: number; readonly failedByReason: Readonly<Record<string, number>> };
  readonly latencyMs: { readonly count: number; readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  readonly lag: readonly { readonly group: string; readonly topic: string; readonly partition: number; readonly lag: number }[];
  readonly lagByGroup: Readonly<Record<string, number>>;
  readonly dlq: readonly { readonly topic: string; readonly records: number }[];
  readonly breaker: { readonly state: string };
  readonly services: readonly { readonly name: string; readonly status: string }[];
  readonly latestOrders: readonly { readonly orderId: string; readonly status: string; readonly failureReason?: string; readonly total: string | number; readonly currency: string; readonly updatedAt: string | number }[];
}

/** The snapshot did not have the shape the monitor reads. */
export class SnapshotShapeError extends Error {
  override readonly name = "SnapshotShapeError";
}

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new SnapshotShapeError(`snapshot: ${where} must be an object`);
  return value as Json;
}

function list(value: unknown, where: string): Json[] {
  if (!Array.isArray(value)) throw new SnapshotShapeError(`snapshot: ${where} must be a list`);
  return value.map((item, i) => object(item, `${where}[${i}]`));
}

function numbers(value: Json, names: readonly string[], where: string): void {
  for (const name of names) {
    if (typeof value[name] !== "number") throw new SnapshotShapeError(`snapshot: ${where}.${name} must be a number`);
  }
}

function strings(value: Json, names: readonly string[], where: string): void {
  for (const name of names) {
    if (typeof value[name] !== "string") throw new SnapshotShapeError(`snapshot: ${where}.${name} must be a string`);
  }
}

function counts(value: unknown, where: string): Record<string, number> {
  const record = object(value, where);
  numbers(record, Object.keys(record), where);
  return record as Record<string, number>;
}

/** Checks that `value` is a snapshot the monitor can show; throws SnapshotShapeError naming the first field that is not. */
export function parseSnapshot(value: unknown): Snapshot {
  const root = object(value, "the body");
  numbers(root, ["windowSeconds"], "snapshot");
  list(root["throughput"], "throughput").forEach((s, i) => numbers(s, ["second", "created", "completed", "failed", "cancelled"], `throughput[${i}]`));
  const totals = object(root["totals"], "totals");
  numbers(totals, ["created", "completed", "failed", "cancelled"], "totals");
  counts(totals["failedByReason"], "totals.failedByReason");
  numbers(object(root["latencyMs"], "latencyMs"), ["count", "p50", "p90", "p99", "max"], "latencyMs");
  list(root["lag"], "lag").forEach((l, i) => {
    strings(l, ["group", "topic"], `lag[${i}]`);
    numbers(l, ["partition", "lag"], `lag[${i}]`);
  });
  counts(root["lagByGroup"], "lagByGroup");
  list(root["dlq"], "dlq").forEach((d, i) => {
    strings(d, ["topic"], `dlq[${i}]`);
    numbers(d, ["records"], `dlq[${i}]`);
  });
  strings(object(root["breaker"], "breaker"), ["state"], "breaker");
  list(root["services"], "services").forEach((s, i) => strings(s, ["name", "status"], `services[${i}]`));
  list(root["latestOrders"], "latestOrders").forEach((o, i) => strings(o, ["orderId", "status", "currency"], `latestOrders[${i}]`));
  return root as unknown as Snapshot;
}

type Outcome = "created" | "completed" | "failed" | "cancelled";

/** Orders per second by outcome over the last `seconds` full seconds of the throughput series. */
export function ratesOf(throughput: readonly ThroughputSecond[], seconds = 10): Record<Outcome, number> {
  // The newest second is still filling up: leave it out when there is history before it.
  const full = throughput.length > 1 ? throughput.slice(0, -1) : throughput;
  const recent = [...full].sort((a, b) => a.second - b.second).slice(-seconds);
  const rate = (key: Outcome) => (recent.length === 0 ? 0 : recent.reduce((sum, s) => sum + s[key], 0) / recent.length);
  return { created: rate("created"), completed: rate("completed"), failed: rate("failed"), cancelled: rate("cancelled") };
}

const paint = (color: boolean, code: number, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);

/** Green for good, yellow for in-between, red for bad — by the words the snapshot uses. */
function tone(color: boolean, word: string): string {
  const w = word.toLowerCase();
  if (["ok", "up", "closed", "completed", "healthy"].includes(w)) return paint(color, 32, word);
  if (["degraded", "half-open", "halfopen", "half_open", "pending", "validated"].includes(w)) return paint(color, 33, word);
  return paint(color, 31, word);
}

const fixed = (n: number) => n.toFixed(1);
const label = (text: string) => text.padEnd(20);

/** The view of one snapshot as lines; `color` adds ANSI colors. */
export function renderSnapshot(s: Snapshot, color = false): string[] {
  const rates = ratesOf(s.throughput);
  const reasons = Object.entries(s.totals.failedByReason).filter(([, n]) => n > 0).map(([reason, n]) => `${reason} ${n}`);
  const groups = Object.entries(s.lagByGroup).sort(([a], [b]) => a.localeCompare(b));
  const dlq = s.dlq.filter((d) => d.records > 0);
  return [
    `${label("orders/s (10 s)")}created ${fixed(rates.created)}  completed ${fixed(rates.completed)}  failed ${fixed(rates.failed)}  cancelled ${fixed(rates.cancelled)}`,
    `${label(`totals (${s.windowSeconds} s)`)}created ${s.totals.created}  completed ${s.totals.completed}  failed ${s.totals.failed}${reasons.length > 0 ? ` (${reasons.join(", ")})` : ""}  cancelled ${s.totals.cancelled}`,
    `${label("latency ms")}p50 ${s.latencyMs.p50}  p90 ${s.latencyMs.p90}  p99 ${s.latencyMs.p99}  max ${s.latencyMs.max}  (n=${s.latencyMs.count})`,
    `${label("consumer lag")}${groups.length === 0 ? "-" : groups.map(([group, lag]) => `${group} ${lag > 0 ? paint(color, 33, String(lag)) : lag}`).join("  ")}`,
    `${label("dead letters")}${dlq.length === 0 ? "none" : dlq.map((d) => `${d.topic} ${paint(color, 31, String(d.records))}`).join("  ")}`,
    `${label("payment breaker")}${tone(color, s.breaker.state)}`,
    `${label("services")}${s.services.length === 0 ? "-" : s.services.map((svc) => `${svc.name} ${tone(color, svc.status)}`).join("  ")}`,
    "latest orders",
    ...(s.latestOrders.length === 0
      ? ["  -"]
      : s.latestOrders.map((o) => `  ${o.orderId}  ${tone(color, o.status)}${o.failureReason ? ` (${o.failureReason})` : ""}  ${o.total} ${o.currency}  ${String(o.updatedAt)}`)),
  ];
}

async function fetchSnapshot(ctx: CliContext): Promise<Snapshot> {
  return parseSnapshot(await getAdminJson(ctx.settings, SNAPSHOT_PATH));
}

/** Redraws every `intervalMs` until Ctrl-C (or `iterations` frames); an unreachable admin shows as a line, not an exit. */
async function live(ctx: CliContext, intervalMs: number, iterations: number | undefined): Promise<void> {
  const screen = !ctx.json && process.stdout.isTTY;
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once("SIGINT", onSigint);
  if (screen) process.stdout.write("\x1b[?25l");
  try {
    for (let frame = 1; !stop.signal.aborted; frame += 1) {
      const header = `orderflow monitor — ${ctx.settings.adminUrl} — ${new Date().toISOString()} (every ${intervalMs / 1000} s, Ctrl-C quits)`;
      try {
        const snapshot = await fetchSnapshot(ctx);
        if (ctx.json) emit(ctx, snapshot, "");
        else process.stdout.write(`${screen ? "\x1b[2J\x1b[H" : "\n"}${[header, "", ...renderSnapshot(snapshot, screen)].join("\n")}\n`);
      } catch (err) {
        if (ctx.json) emit(ctx, { error: messageOf(err) }, "");
        else process.stdout.write(`${screen ? "\x1b[2J\x1b[H" : "\n"}${header}\n\n${paint(screen, 31, `! ${messageOf(err)}`)} — retrying\n`);
      }
      if (iterations !== undefined && frame >= iterations) break;
      await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    process.off("SIGINT", onSigint);
    if (screen) process.stdout.write("\x1b[?25h");
  }
}

export function monitorCommand(context: ContextFactory): Command {
  return new Command("monitor")
    .description("live view of throughput, latency, consumer lag, dead letters, the payment breaker and service health (from the admin process's dashboard snapshot)")
    .option("--once", "print one snapshot and exit (exit 1 when the admin process is unreachable)")
    .addOption(new Option("--interval <ms>", "refresh period").argParser(wholeNumberOption("--interval", 100)).default(1000))
    .addOption(new Option("--iterations <n>", "stop after this many refreshes (default: until Ctrl-C)").argParser(wholeNumberOption("--iterations", 1)))
    .action(async (options: { once?: boolean; interval: number; iterations?: number }) => {
      const ctx = context();
      if (!options.once) return live(ctx, options.interval, options.iterations);
      const snapshot = await fetchSnapshot(ctx);
      output(ctx, snapshot, renderSnapshot(snapshot));
    });
}
