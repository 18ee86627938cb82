/**
 * `orderflow generate` — places sample orders through the REST API at a fixed rate: catalog SKUs
 * at catalog prices, a share of declined cards, a progress bar on stderr, and the placed, accepted
 * and rejected counts at the end (exit 1 when any order was rejected).
 */
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { output, positiveNumberOption, UsageError, wholeNumberOption, type CliContext, type ContextFactory } from "./context.ts";
import { orderApiTarget } from "./load.ts";
import { Measurement, runOpenLoop, type RunResult } from "./loadgen.ts";
import { listProducts } from "./order-api.ts";
import { testCards, type SampleMix } from "./samples.ts";

/** What a run placed. */
export interface GenerateResult {
  readonly placed: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Rejections by reason ("HTTP 503", or why the API did not answer). */
  readonly rejections: Readonly<Record<string, number>>;
  readonly seconds: number;
  /** Orders placed per second, as achieved. */
  readonly rate: number;
}

/** The mix `generate` draws from: catalog products in stock (in `currency`) and the two test cards. */
async function catalogMix(ctx: CliContext, currency: string, declinedShare: number): Promise<SampleMix> {
  const products = (await listProducts(ctx.settings.orderApiUrl)).filter((p) => p.currency === currency && p.available > 0);
  if (products.length === 0) throw new Error(`the catalog at ${ctx.settings.orderApiUrl} has no ${currency} product in stock — run \`orderflow stock seed\``);
  const declined = Math.round(declinedShare * 1000);
  return {
    products: products.map((p) => ({ sku: p.sku, price: p.price })),
    cards: [
      { card: testCards.success, weight: 1000 - declined },
      { card: testCards.declined, weight: declined },
    ],
    currency,
    customerPrefix: "gen",
    customers: 1000,
    email: "generated@example.com",
    maxLines: 3,
    maxQuantity: 2,
  };
}

export function generateCommand(context: ContextFactory): Command {
  return new Command("generate")
    .description("place sample orders through the order API at a fixed rate (catalog SKUs, a share of declined cards)")
    .addOption(new Option("--rate <per-second>", "orders per second").argParser(positiveNumberOption("--rate")).default(10))
    .addOption(new Option("--count <n>", "how many orders").argParser(wholeNumberOption("--count", 1)).conflicts("duration"))
    .addOption(new Option("--duration <seconds>", "place orders for this long (rate × duration orders)").argParser(positiveNumberOption("--duration")))
    .addOption(new Option("--declined-share <fraction>", `share of orders paid with the declined card ${testCards.declined}`).argParser(parseShare).default(0.1))
    .option("--currency <code>", "only products priced in this currency", "USD")
    .addHelpText("after", "\nExample:\n  orderflow generate --rate 20 --duration 30 --declined-share 0.2")
    .action(async (options: { rate: number; count?: number; duration?: number; declinedShare: number; currency: string }) => {
      const total = options.count ?? (options.duration === undefined ? undefined : Math.max(1, Math.round(options.rate * options.duration)));
      if (total === undefined) throw new UsageError("say how many orders: --count N or --duration SECONDS");
      const ctx = context();
      const mix = await catalogMix(ctx, options.currency, options.declinedShare);
      const bar = ctx.json || !process.stderr.isTTY ? undefined : new cliProgress.SingleBar({ stream: process.stderr, format: "orders [{bar}] {value}/{total} sent | {accepted} accepted", hideCursor: true }, cliProgress.Presets.shades_classic);
      bar?.start(total, 0, { accepted: 0 });
      let run: RunResult;
      try {
        // The load generator's open-loop schedule: order i goes at start + i/rate; nothing waits for ends.
        run = await runOpenLoop(orderApiTarget(ctx, mix), new Measurement(() => performance.now()), {
          rate: options.rate,
          durationS: total / options.rate,
          drainMs: 0,
          onProgress: (sent, _total, m) => bar?.update(sent, { accepted: m.acceptedCount }),
        });
      } finally {
        bar?.stop();
      }
      const result: GenerateResult = { placed: run.sent, accepted: run.accepted, rejected: run.sent - run.accepted, rejections: run.errors, seconds: run.durationS, rate: Math.round((run.sent / run.durationS) * 10) / 10 };
      const reasons = Object.entries(result.rejections).map(([why, n]) => `${why}: ${n}`);
      output(ctx, result, [`placed ${result.placed}, accepted ${result.accepted}, rejected ${result.rejected}${reasons.length > 0 ? ` (${reasons.join(", ")})` : ""} in ${result.seconds.toFixed(1)} s (${result.rate.toFixed(1)}/s)`]);
      if (result.rejected > 0) process.exitCode = 1;
    });
}

function parseShare(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--declined-share must be a fraction from 0 to 1, got ${JSON.stringify(value)}`);
  return n;
}
