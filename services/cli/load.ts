/**
 * `orderflow load` — an honest load test of the running system: orders go to the order API on an
 * open-loop schedule (or N at a time, or a ramp that finds the highest sustainable rate), and each
 * order's latency runs from its scheduled send to its end on orders.completed / orders.failed /
 * orders.cancelled, read from Kafka — not by polling the API. Prints percentiles, throughput and
 * outcomes; --report writes the whole result as JSON.
 */
import { writeFileSync } from "node:fs";
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { FailureReason } from "../../gen/orderflow/v1/common_pb.ts";
import type { OrderFailed } from "../../gen/orderflow/v1/events_pb.ts";
import { topicSpec } from "../../infra/topics.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { tailTopics, type Tail } from "../../lib/kafka/tail.ts";
import type { ReadRecord } from "../../lib/kafka/read-to-end.ts";
import { fractionOption, orderApiOf, output, positiveNumberOption, UsageError, wholeNumberOption, type CliContext, type ContextFactory } from "./context.ts";
import { Measurement, runClosedLoop, runOpenLoop, runRamp, sustainableRate, type End, type LoadTarget, type RampStep, type RunResult } from "./loadgen.ts";
import { listProducts, postOrder } from "./order-api.ts";
import { mathRandomInt, sampleOrder, testCards, type SampleMix } from "./samples.ts";

/** Where an order's end is published, and what it is called. */
const terminalTopics = { "orders.completed": "completed", "orders.failed": "failed", "orders.cancelled": "cancelled" } as const;

/** Reads an order's end from a terminal record (undefined for what is not one). */
export function endOf(base: string, record: ReadRecord): End | undefined {
  const outcome = terminalTopics[base as keyof typeof terminalTopics];
  if (outcome === undefined) return undefined;
  const decoded = decodeUnlessPoison(record, topicSpec(base).valueTypes);
  if (decoded === undefined) return undefined;
  const id = decoded.envelope.orderId;
  if (outcome !== "failed") return { id, outcome };
  return { id, outcome, reason: FailureReason[(decoded.message as OrderFailed).reason] ?? "UNKNOWN" };
}

/**
 * Follows the terminal topics and hands every end to the current measurement. The tail starts at
 * the topics' current end, before the first order is sent.
 */
export async function watchEnds(ctx: CliContext, current: () => Measurement | undefined): Promise<Tail> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  try {
    const names = new Map(Object.keys(terminalTopics).map((base) => [topicName(ctx.config, base), base]));
    return await tailTopics(ctx.config, admin, [...names.keys()], (record) => {
      const end = endOf(names.get(record.topic) ?? "", record);
      if (end !== undefined) current()?.ended(end);
    });
  } finally {
    await admin.disconnect();
  }
}

/** What shapes a load's orders and its run (the command's options). */
export interface LoadOptions {
  rate?: number;
  duration: number;
  orders?: number;
  concurrent: number;
  ramp?: boolean;
  startRate: number;
  maxRate: number;
  factor: number;
  step: number;
  p99Bound: number;
  declinedShare: number;
  outOfStockShare: number;
  scarceSku: string;
  skus?: string;
  drain: number;
  report?: string;
}

/** The orders a load sends: catalog products (or --skus), a share of declined cards and of a scarce SKU. */
export async function loadMix(ctx: CliContext, options: Pick<LoadOptions, "skus" | "scarceSku" | "outOfStockShare" | "declinedShare">): Promise<SampleMix> {
  const catalog = await listProducts(ctx.settings.orderApiUrl);
  const wanted = options.skus?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const products = catalog.filter((p) => p.currency === "USD" && (wanted === undefined ? p.sku !== options.scarceSku : wanted.includes(p.sku)));
  if (products.length === 0) throw new Error(`no USD product to order at ${ctx.settings.orderApiUrl} — run \`orderflow stock seed\``);
  const scarce = catalog.find((p) => p.sku === options.scarceSku);
  if (options.outOfStockShare > 0 && scarce === undefined) throw new UsageError(`--scarce-sku ${options.scarceSku} is not in the catalog`);
  const declined = Math.round(options.declinedShare * 1000);
  return {
    products: products.map((p) => ({ sku: p.sku, price: p.price })),
    ...(scarce === undefined || options.outOfStockShare === 0 ? {} : { scarce: { product: { sku: scarce.sku, price: scarce.price }, percent: Math.round(options.outOfStockShare * 100) } }),
    cards: [
      { card: testCards.success, weight: 1000 - declined },
      { card: testCards.declined, weight: declined },
    ],
    currency: "USD",
    customerPrefix: "load",
    customers: 10_000,
    email: "load@example.com",
    maxLines: 2,
    maxQuantity: 1,
  };
}

/** Sends orders of `mix` to the order API, each with its customer's token; an order that is not accepted is an error of the run. */
export function orderApiTarget(ctx: CliContext, mix: SampleMix): LoadTarget {
  const api = orderApiOf(ctx.settings);
  return {
    async send() {
      const placed = await postOrder(api, sampleOrder(mix, mathRandomInt));
      if (!placed.accepted) throw new Error(`HTTP ${placed.status}`);
      return placed.orderId;
    },
  };
}

/** The lines a person reads about one run. */
export function describeRun(title: string, r: RunResult): string[] {
  const ended = Object.entries(r.ended).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  const reasons = Object.entries(r.reasons).map(([k, v]) => `${k} ${v}`).join(", ");
  const errors = Object.entries(r.errors).map(([k, v]) => `${k} ×${v}`).join(", ");
  const l = r.latencyMs;
  return [
    `${title}: sent ${r.sent}, accepted ${r.accepted}, ended ${ended}${reasons === "" ? "" : ` (failed: ${reasons})`}, unfinished ${r.unfinished}`,
    `  throughput ${r.throughput} orders/s over ${r.durationS} s`,
    `  latency ms (scheduled send → end): p50 ${l.p50} · p90 ${l.p90} · p99 ${l.p99} · p99.9 ${l.p999} · max ${l.max}`,
    ...(errors === "" ? [] : [`  errors: ${errors}`]),
  ];
}

function progressBar(ctx: CliContext, format: string) {
  return ctx.json || !process.stderr.isTTY ? undefined : new cliProgress.SingleBar({ stream: process.stderr, format, hideCursor: true }, cliProgress.Presets.shades_classic);
}

export function loadCommand(context: ContextFactory): Command {
  return new Command("load")
    .description("load-test the running system: open-loop rate, N orders at a concurrency, or a ramp to the highest sustainable rate")
    .addOption(new Option("--rate <per-second>", "open loop: orders per second").argParser(positiveNumberOption("--rate")))
    .addOption(new Option("--duration <seconds>", "open loop: for this long").argParser(positiveNumberOption("--duration")).default(60))
    .addOption(new Option("--orders <n>", "closed loop: this many orders...").argParser(wholeNumberOption("--orders", 1)).conflicts(["rate", "ramp"]))
    .addOption(new Option("--concurrent <n>", "...with this many in flight").argParser(wholeNumberOption("--concurrent", 1)).default(10))
    .addOption(new Option("--ramp", "raise the rate step by step until p99 or the backlog give out").conflicts("rate"))
    .addOption(new Option("--start-rate <per-second>", "ramp: first rate").argParser(positiveNumberOption("--start-rate")).default(50))
    .addOption(new Option("--max-rate <per-second>", "ramp: stop here").argParser(positiveNumberOption("--max-rate")).default(5000))
    .addOption(new Option("--factor <x>", "ramp: each step multiplies the rate by this").argParser(positiveNumberOption("--factor")).default(1.5))
    .addOption(new Option("--step <seconds>", "ramp: length of a step").argParser(positiveNumberOption("--step")).default(20))
    .addOption(new Option("--p99-bound <ms>", "ramp: a step is sustainable while p99 stays under this").argParser(positiveNumberOption("--p99-bound")).default(500))
    .addOption(new Option("--declined-share <fraction>", `share paid with the declined card ${testCards.declined}`).argParser(fractionOption("--declined-share")).default(0.05))
    .addOption(new Option("--out-of-stock-share <fraction>", "share whose first line is the scarce SKU (fails INVENTORY once it is gone)").argParser(fractionOption("--out-of-stock-share")).default(0))
    .option("--scarce-sku <sku>", "the SKU --out-of-stock-share orders", "rare_item")
    .option("--skus <list>", "order only these SKUs (comma-separated; default: the USD catalog)")
    .addOption(new Option("--drain <seconds>", "wait this long for the last orders to end").argParser(positiveNumberOption("--drain")).default(30))
    .option("--report <file>", "also write the result as JSON to this file")
    .addHelpText("after", "\nExamples:\n  orderflow load --rate 100 --duration 60\n  orderflow load --orders 1000 --concurrent 20\n  orderflow load --ramp --start-rate 50 --p99-bound 500")
    .action(async (options: LoadOptions) => {
      if (options.rate === undefined && options.orders === undefined && options.ramp !== true) throw new UsageError("say how to load: --rate R [--duration S], --orders N [--concurrent C], or --ramp");
      const ctx = context();
      const target = orderApiTarget(ctx, await loadMix(ctx, options));
      let current: Measurement | undefined;
      const tail = await watchEnds(ctx, () => current);
      const now = () => performance.now();
      const drainMs = options.drain * 1000;
      try {
        if (options.ramp === true) {
          const steps: RampStep[] = await runRamp(target, now, (m) => (current = m), {
            startRate: options.startRate,
            factor: options.factor,
            maxRate: options.maxRate,
            stepS: options.step,
            p99BoundMs: options.p99Bound,
            drainMs,
            onStep: (s) => process.stderr.write(`ramp ${s.rate}/s: ${s.sustainable ? "sustained" : "not sustained"} — ${s.why}\n`),
          });
          const best = sustainableRate(steps);
          const report = { mode: "ramp", sustainableRate: best, p99BoundMs: options.p99Bound, steps };
          if (options.report !== undefined) writeFileSync(options.report, `${JSON.stringify(report, null, 2)}\n`);
          output(ctx, report, [...steps.flatMap((s) => describeRun(`${s.rate}/s ${s.sustainable ? "✓" : "✗"} ${s.why}`, s.result)), `highest sustainable rate: ${best} orders/s (p99 < ${options.p99Bound} ms)`]);
          return;
        }
        current = new Measurement(now);
        const m = current;
        let result: RunResult;
        if (options.orders !== undefined) {
          const bar = progressBar(ctx, "orders [{bar}] {value}/{total} | in flight {outstanding}");
          bar?.start(options.orders, 0, { outstanding: 0 });
          result = await runClosedLoop(target, m, { orders: options.orders, concurrency: options.concurrent, drainMs, onProgress: (done, _t, mm) => bar?.update(done, { outstanding: mm.outstanding }) }).finally(() => bar?.stop());
        } else {
          const rate = options.rate ?? 0;
          const bar = progressBar(ctx, "orders [{bar}] {value}/{total} sent | waiting for {outstanding}");
          bar?.start(Math.round(rate * options.duration), 0, { outstanding: 0 });
          result = await runOpenLoop(target, m, { rate, durationS: options.duration, drainMs, onProgress: (sent, _t, mm) => bar?.update(sent, { outstanding: mm.outstanding }) }).finally(() => bar?.stop());
        }
        const report = { mode: options.orders === undefined ? "rate" : "closed", ...(options.rate === undefined ? { orders: options.orders, concurrent: options.concurrent } : { rate: options.rate, duration: options.duration }), result };
        if (options.report !== undefined) writeFileSync(options.report, `${JSON.stringify(report, null, 2)}\n`);
        output(ctx, report, describeRun("load", result));
        if (result.unfinished > 0 || Object.keys(result.errors).length > 0) process.exitCode = 1;
      } finally {
        await tail.stop();
      }
    });
}
