/**
 * `orderflow generate` — places sample orders through the REST API at a fixed rate: catalog SKUs
 * at catalog prices, a share of declined cards, a progress bar on stderr, and the placed, accepted
 * and rejected counts at the end (exit 1 when any order was rejected). The orders, their sender and
 * their schedule are the load command's (load.ts, loadgen.ts); generate only places, it does not
 * measure.
 */
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { fractionOption, output, positiveNumberOption, UsageError, wholeNumberOption, type ContextFactory } from "./context.ts";
import { loadMix, orderApiTarget } from "./load.ts";
import { Measurement, runOpenLoop, type RunResult } from "./loadgen.ts";
import { testCards } from "./samples.ts";

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

export function generateCommand(context: ContextFactory): Command {
  return new Command("generate")
    .description("place sample orders through the order API at a fixed rate (catalog SKUs, a share of declined cards)")
    .addOption(new Option("--rate <per-second>", "orders per second").argParser(positiveNumberOption("--rate")).default(10))
    .addOption(new Option("--count <n>", "how many orders").argParser(wholeNumberOption("--count", 1)).conflicts("duration"))
    .addOption(new Option("--duration <seconds>", "place orders for this long (rate × duration orders)").argParser(positiveNumberOption("--duration")))
    .addOption(new Option("--declined-share <fraction>", `share of orders paid with the declined card ${testCards.declined}`).argParser(fractionOption("--declined-share")).default(0.1))
    .addHelpText("after", "\nExample:\n  orderflow generate --rate 20 --duration 30 --declined-share 0.2")
    .action(async (options: { rate: number; count?: number; duration?: number; declinedShare: number }) => {
      const total = options.count ?? (options.duration === undefined ? undefined : Math.max(1, Math.round(options.rate * options.duration)));
      if (total === undefined) throw new UsageError("say how many orders: --count N or --duration SECONDS");
      const ctx = context();
      // The load command's mix (catalog SKUs in USD at catalog prices) without its scarce SKU.
      // Customers gen-1… so that generated orders are told apart from a load test's (load-1…).
      const mix = { ...(await loadMix(ctx, { declinedShare: options.declinedShare, outOfStockShare: 0, scarceSku: "" })), customerPrefix: "gen" };
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
