/**
 * `orderflow generate` — places sample orders through the REST API at a fixed rate: catalog SKUs
 * at catalog prices, a share of declined cards, a progress bar on stderr, and the placed, accepted
 * and rejected counts at the end (exit 1 when any order was rejected).
 */
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { messageOf } from "../../lib/errors.ts";
import { output, positiveNumberOption, UsageError, wholeNumberOption, type CliContext, type ContextFactory } from "./context.ts";
import { listProducts, postOrder } from "./order-api.ts";
import { mathRandomInt, sampleOrder, testCards, type SampleMix } from "./samples.ts";

/** What a run placed. */
export interface GenerateResult {
  readonly placed: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Rejections by HTTP status, or "no answer" when the API did not respond. */
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

/** Places `total` orders of `mix` at `rate` per second; `onPlaced` hears of each answer. */
export async function placeAtRate(ctx: CliContext, mix: SampleMix, rate: number, total: number, onPlaced: (result: GenerateResult) => void): Promise<GenerateResult> {
  const startedAt = Date.now();
  const rejections: Record<string, number> = {};
  let sent = 0;
  let accepted = 0;
  let rejected = 0;
  const result = (): GenerateResult => {
    const seconds = (Date.now() - startedAt) / 1000;
    return { placed: accepted + rejected, accepted, rejected, rejections: { ...rejections }, seconds, rate: seconds > 0 ? (accepted + rejected) / seconds : 0 };
  };
  const place = async () => {
    try {
      const placed = await postOrder(ctx.settings.orderApiUrl, sampleOrder(mix, mathRandomInt));
      if (placed.accepted) accepted += 1;
      else {
        rejected += 1;
        rejections[String(placed.status)] = (rejections[String(placed.status)] ?? 0) + 1;
      }
    } catch (err) {
      rejected += 1;
      rejections["no answer"] = (rejections["no answer"] ?? 0) + 1;
      ctx.log.debug({ err: messageOf(err) }, "order not placed");
    }
    onPlaced(result());
  };
  const inFlight = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    const tick = () => {
      // The first order goes at once, then one every 1/rate seconds.
      const due = Math.min(total, Math.floor(((Date.now() - startedAt) / 1000) * rate) + 1);
      for (; sent < due; sent += 1) {
        const placing = place().finally(() => inFlight.delete(placing));
        inFlight.add(placing);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 10);
    tick();
  });
  await Promise.all([...inFlight]);
  return result();
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
      const bar = ctx.json || !process.stderr.isTTY ? undefined : new cliProgress.SingleBar({ stream: process.stderr, format: "orders [{bar}] {value}/{total} | accepted {accepted} | rejected {rejected} | {rate}/s", hideCursor: true }, cliProgress.Presets.shades_classic);
      bar?.start(total, 0, { accepted: 0, rejected: 0, rate: "0.0" });
      let result: GenerateResult;
      try {
        result = await placeAtRate(ctx, mix, options.rate, total, (r) => bar?.update(r.placed, { accepted: r.accepted, rejected: r.rejected, rate: r.rate.toFixed(1) }));
      } finally {
        bar?.stop();
      }
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
