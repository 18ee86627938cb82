/**
 * Catalog prices as order validation needs them, kept in memory. Redis holds the catalog
 * (product:{sku} hashes, services/inventory/stock.ts); a writer that changes it bumps the counter
 * `catalog:version` afterwards. Every process checks that counter in the background every
 * `checkMs` and drops what it holds when it moved, so a price change takes effect for orders
 * validated from at most `checkMs` (plus one round trip) after the bump. A writer that does not
 * bump (a hand edit in Redis) is seen within `maxAgeMs`, the longest an entry is kept. Polling a
 * counter rather than subscribing to a channel: nothing is lost while a connection is down, and one
 * GET per interval costs nothing; the cost is the bound being the interval rather than immediate.
 *
 * A SKU not held is read on demand: every SKU an order lacks in one pipelined round trip. Unknown
 * SKUs are not remembered (an order naming one fails validation anyway).
 */
import type { Keys, Redis } from "../../lib/redis.ts";
import type { CatalogPrice } from "./saga.ts";

/** The key a catalog writer increments after changing any product:{sku} hash. */
export const catalogVersionKey = (keys: Keys): string => keys("catalog", "version");

export interface CatalogCacheOptions {
  /** Longest an entry is used without being read again. */
  readonly maxAgeMs: number;
  readonly now: () => number;
}

export class CatalogCache {
  readonly #held = new Map<string, { readonly price: CatalogPrice; readonly readAtMs: number }>();
  /** Bumped whenever the cache is dropped; a read that started before a drop is not kept. */
  #generation = 0;
  #version: string | null | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly options: CatalogCacheOptions,
  ) {}

  /** The catalog entries of `skus` that exist (absent = unknown SKU). */
  async prices(skus: readonly string[]): Promise<Map<string, CatalogPrice>> {
    const found = new Map<string, CatalogPrice>();
    const missing: string[] = [];
    const nowMs = this.options.now();
    for (const sku of new Set(skus)) {
      const held = this.#held.get(sku);
      if (held !== undefined && nowMs - held.readAtMs < this.options.maxAgeMs) found.set(sku, held.price);
      else missing.push(sku);
    }
    if (missing.length === 0) return found;
    const generation = this.#generation;
    const pipeline = this.redis.pipeline();
    for (const sku of missing) pipeline.hgetall(this.keys("product", sku));
    const replies = (await pipeline.exec()) ?? [];
    missing.forEach((sku, at) => {
      const [err, product] = replies[at] ?? [new Error(`no reply for product ${sku}`), {}];
      if (err) throw err;
      const { currency, price_minor: priceMinor } = product as Record<string, string | undefined>;
      if (currency === undefined || priceMinor === undefined) return;
      const price = { currency, priceMinor: BigInt(priceMinor) };
      found.set(sku, price);
      if (generation === this.#generation) this.#held.set(sku, { price, readAtMs: nowMs });
    });
    return found;
  }

  /** Reads the catalog version; drops every held entry when it is not the one seen last time. */
  async check(): Promise<void> {
    const version = await this.redis.get(catalogVersionKey(this.keys));
    if (version === this.#version) return;
    this.#version = version;
    this.#generation += 1;
    this.#held.clear();
  }
}
