/** `orderflow stock seed|set|adjust|get` — the product catalog and stock levels in Redis. */
import { Command } from "commander";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { loadCatalog, defaultCatalogPath } from "../inventory/catalog.ts";
import { StockStore, type StockLevel } from "../inventory/stock.ts";
import { output, type CliContext, type ContextFactory } from "./context.ts";

async function withStore<T>(ctx: CliContext, work: (store: StockStore) => Promise<T>): Promise<T> {
  const redis = createRedis(ctx.config, ctx.log);
  try {
    return await work(new StockStore(redis, keyspace(ctx.config.redisKeyPrefix)));
  } finally {
    redis.disconnect();
  }
}

/** What seeding did: products in the catalog file, SKUs that got stock because they had none. */
export interface SeedResult {
  readonly products: number;
  readonly stocked: number;
}

/** Loads the catalog file into Redis; sets stock only for SKUs that have none. `stock seed` and `reset` both use it. */
export async function seedStock(ctx: CliContext, file: string = defaultCatalogPath): Promise<SeedResult> {
  const entries = loadCatalog(file);
  const stocked = await withStore(ctx, (store) => store.seedCatalog(entries));
  return { products: entries.length, stocked };
}

/** The human line of a seed. */
export const seedLine = (r: SeedResult) => `catalog: ${r.products} products, stock set for ${r.stocked} new SKU(s)`;

const line = (l: StockLevel) => `${l.sku.padEnd(14)} available=${l.available} reserved=${l.reserved} committed=${l.committed} on_hand=${l.onHand}`;

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`${value} is not a whole number`);
  return n;
}

export function stockCommand(context: ContextFactory): Command {
  const stock = new Command("stock").description("the catalog and stock levels");
  stock
    .command("seed")
    .description("load the catalog file; sets stock only for SKUs that have none (safe to repeat)")
    .option("--file <path>", "catalog file", defaultCatalogPath)
    .action(async (options: { file: string }) => {
      const ctx = context();
      const result = await seedStock(ctx, options.file);
      output(ctx, result, [seedLine(result)]);
    });
  stock
    .command("set <sku> <available>")
    .description("set the available quantity of a SKU")
    .action(async (sku: string, available: string) => {
      const ctx = context();
      const level = await withStore(ctx, (store) => store.setStock(sku, wholeNumber(available)));
      output(ctx, level, [line(level)]);
    });
  stock
    .command("adjust <sku> <delta>")
    .description("add (or with a negative delta, remove) available units")
    .action(async (sku: string, delta: string) => {
      const ctx = context();
      const level = await withStore(ctx, (store) => store.adjustStock(sku, wholeNumber(delta)));
      output(ctx, level, [line(level)]);
    });
  stock
    .command("get [sku]")
    .description("stock of one SKU, or all")
    .action(async (sku?: string) => {
      const ctx = context();
      const levels = await withStore(ctx, async (store) => (sku === undefined ? store.listStock() : [await store.getStock(sku)].filter((l) => l !== undefined)));
      if (sku !== undefined && levels.length === 0) throw new Error(`unknown sku ${sku}`);
      output(ctx, { levels }, levels.map(line));
    });
  return stock;
}
