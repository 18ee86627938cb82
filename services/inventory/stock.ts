/**
 * Stock in Redis. Per SKU, on hand = available + reserved + committed, and every change that
 * touches more than one number is one Lua script, so the invariant holds at every instant and two
 * orders can never both take the last unit. Reservations are idempotent by order id: the outcome is
 * recorded with the reservation and a replay returns it unchanged.
 *
 * Keys: product:{sku} {name, currency, price_minor}; products (set of SKUs); stock:{sku}
 * {available, reserved, committed}; reservation:{order} {state, outcome, lines, reason}. A
 * reservation's expires_at is in its outcome: the saga acts on it (no sweeper here). Scripts
 * derive stock keys from the prefix, so this layout assumes one Redis node (not Redis Cluster).
 *
 * Lifetimes: products, the SKU set and stock counts are permanent (the catalog and the books of
 * what is on hand). A reservation record is the service's dedup record: while it holds stock it is
 * kept without expiry (the saga's release or the order's completion ends it); once rejected, released or committed it expires
 * `lifetimeMs` (REDIS_DEDUP_TTL_MS) after that write, later than any redelivery of a command about it.
 */
import { RejectedError } from "../../lib/errors.ts";
import { DEFAULT_DEDUP_LIFETIME_MS } from "../../lib/lifetimes.ts";
import type { Keys, Redis } from "../../lib/redis.ts";

export interface Line {
  readonly productId: string;
  readonly quantity: number;
}

export interface Shortage {
  readonly productId: string;
  readonly requested: number;
  readonly available: number;
}

export type ReserveOutcome =
  | { readonly kind: "reserved"; readonly reservationId: string; readonly lines: readonly Line[]; readonly expiresAtMs: number; readonly replayed: boolean }
  | { readonly kind: "rejected"; readonly shortages: readonly Shortage[]; readonly replayed: boolean };

export type SettleOutcome =
  | { readonly kind: "released" | "committed"; readonly orderId: string; readonly reservationId: string; readonly lines: readonly Line[]; readonly replayed: boolean }
  | { readonly kind: "nothing"; readonly state: string };

export type ReleaseReasonName = "COMPENSATION" | "EXPIRED" | "CANCELLED";

export interface StockLevel {
  readonly sku: string;
  readonly available: number;
  readonly reserved: number;
  readonly committed: number;
  readonly onHand: number;
}

export interface CatalogEntry {
  readonly sku: string;
  readonly name: string;
  readonly currency: string;
  readonly priceMinor: bigint;
  readonly stock: number;
}

const reserveScript = `
local recorded = redis.call('HGET', KEYS[1], 'outcome')
if recorded then return '1' .. recorded end
local prefix = ARGV[3]
local shortages = {}
local lines = {}
for i = 5, #ARGV, 2 do
  local sku, want = ARGV[i], tonumber(ARGV[i + 1])
  local available = tonumber(redis.call('HGET', prefix .. sku, 'available') or '0')
  if available < want then table.insert(shortages, {productId = sku, requested = want, available = available}) end
  table.insert(lines, {productId = sku, quantity = want})
end
local outcome
if #shortages > 0 then
  outcome = cjson.encode({kind = 'rejected', shortages = shortages})
  redis.call('HSET', KEYS[1], 'state', 'rejected', 'outcome', outcome)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  for _, line in ipairs(lines) do
    redis.call('HINCRBY', prefix .. line.productId, 'available', -line.quantity)
    redis.call('HINCRBY', prefix .. line.productId, 'reserved', line.quantity)
  end
  outcome = cjson.encode({kind = 'reserved', reservationId = ARGV[1], lines = lines, expiresAtMs = tonumber(ARGV[2])})
  redis.call('HSET', KEYS[1], 'state', 'reserved', 'outcome', outcome, 'lines', cjson.encode(lines), 'reservation_id', ARGV[1])
  redis.call('PERSIST', KEYS[1])
end
return '0' .. outcome`;

/** Moves a live reservation's quantities from reserved to `target` (available or committed). */
const settleScript = `
local state = redis.call('HGET', KEYS[1], 'state')
local target_state, target_field = ARGV[1], ARGV[2]
if state == target_state then
  return cjson.encode({kind = target_state, reservationId = redis.call('HGET', KEYS[1], 'reservation_id'), lines = cjson.decode(redis.call('HGET', KEYS[1], 'lines')), replayed = true})
end
if state ~= 'reserved' then return cjson.encode({kind = 'nothing', state = state or 'none'}) end
local lines = cjson.decode(redis.call('HGET', KEYS[1], 'lines'))
for _, line in ipairs(lines) do
  redis.call('HINCRBY', ARGV[3] .. line.productId, 'reserved', -line.quantity)
  redis.call('HINCRBY', ARGV[3] .. line.productId, target_field, line.quantity)
end
redis.call('HSET', KEYS[1], 'state', target_state, 'reason', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return cjson.encode({kind = target_state, reservationId = redis.call('HGET', KEYS[1], 'reservation_id'), lines = lines, replayed = false})`;

const adjustScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('unknown sku') end
local available = tonumber(redis.call('HGET', KEYS[1], 'available'))
local next = ARGV[1] == 'set' and tonumber(ARGV[2]) or available + tonumber(ARGV[2])
if next < 0 then return redis.error_reply('available would be ' .. next) end
redis.call('HSET', KEYS[1], 'available', next)
return next`;

type StockRedis = Redis & {
  stockReserve(reservation: string, ...args: string[]): Promise<string>;
  stockSettle(reservation: string, state: string, field: string, prefix: string, reason: string, lifetimeMs: number): Promise<string>;
  stockAdjust(stock: string, mode: "set" | "add", amount: string): Promise<number>;
};

/** Merges duplicate SKUs and checks quantities. */
function merged(lines: readonly Line[]): Line[] {
  const totals = new Map<string, number>();
  for (const line of lines) {
    if (!Number.isInteger(line.quantity) || line.quantity <= 0) throw new RejectedError(`quantity of ${line.productId} must be a positive integer`);
    totals.set(line.productId, (totals.get(line.productId) ?? 0) + line.quantity);
  }
  return [...totals].map(([productId, quantity]) => ({ productId, quantity }));
}

export class StockStore {
  readonly #redis: StockRedis;

  /** `lifetimeMs`: how long a settled reservation is kept; tools that reserve nothing may leave the default. */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly lifetimeMs: number = DEFAULT_DEDUP_LIFETIME_MS,
  ) {
    redis.defineCommand("stockReserve", { numberOfKeys: 1, lua: reserveScript });
    redis.defineCommand("stockSettle", { numberOfKeys: 1, lua: settleScript });
    redis.defineCommand("stockAdjust", { numberOfKeys: 1, lua: adjustScript });
    this.#redis = redis as StockRedis;
  }

  /** Creates or updates products; sets stock only for SKUs without any (re-seeding keeps live stock). Returns how many got stock. */
  async seedCatalog(entries: readonly CatalogEntry[]): Promise<number> {
    let created = 0;
    for (const entry of entries) {
      await this.#redis.hset(this.keys("product", entry.sku), { name: entry.name, currency: entry.currency, price_minor: entry.priceMinor.toString() });
      await this.#redis.sadd(this.keys("products"), entry.sku);
      const stockKey = this.keys("stock", entry.sku);
      if ((await this.#redis.hsetnx(stockKey, "available", entry.stock)) === 1) {
        await this.#redis.hset(stockKey, { reserved: 0, committed: 0 });
        created += 1;
      }
    }
    // The orchestrator caches prices and re-reads them once this moves (services/orchestrator/catalog.ts).
    await this.#redis.incr(this.keys("catalog", "version"));
    return created;
  }

  async getStock(sku: string): Promise<StockLevel | undefined> {
    const raw = await this.#redis.hgetall(this.keys("stock", sku));
    if (raw["available"] === undefined) return undefined;
    const [available, reserved, committed] = [raw["available"], raw["reserved"], raw["committed"]].map((v) => Number(v ?? "0")) as [number, number, number];
    return { sku, available, reserved, committed, onHand: available + reserved + committed };
  }

  async listStock(): Promise<StockLevel[]> {
    const skus = (await this.#redis.smembers(this.keys("products"))).sort();
    return (await Promise.all(skus.map((sku) => this.getStock(sku)))).filter((level) => level !== undefined);
  }

  /** Sets the available quantity of a known SKU. */
  setStock(sku: string, available: number): Promise<StockLevel> {
    return this.#adjust(sku, "set", available);
  }

  /** Adds `delta` (may be negative) to the available quantity; refuses to go below zero. */
  adjustStock(sku: string, delta: number): Promise<StockLevel> {
    return this.#adjust(sku, "add", delta);
  }

  async #adjust(sku: string, mode: "set" | "add", amount: number): Promise<StockLevel> {
    if (!Number.isInteger(amount)) throw new RejectedError("stock changes are whole units");
    try {
      await this.#redis.stockAdjust(this.keys("stock", sku), mode, String(amount));
    } catch (err) {
      throw new RejectedError(`cannot change stock of ${sku}: ${(err as Error).message}`, { cause: err });
    }
    return (await this.getStock(sku))!;
  }

  /** Reserves every line or none, once per order. */
  async reserve(orderId: string, lines: readonly Line[], ttlMs: number, nowMs: number): Promise<ReserveOutcome> {
    const args = merged(lines).flatMap((line) => [line.productId, String(line.quantity)]);
    const raw = await this.#redis.stockReserve(
      this.keys("reservation", orderId),
      `res-${orderId}`,
      String(nowMs + ttlMs),
      this.keys("stock", ""),
      String(this.lifetimeMs),
      ...args,
    );
    // The script prefixes "1" when it answered from the recorded outcome (a replay), "0" otherwise.
    return { ...(JSON.parse(raw.slice(1)) as Omit<ReserveOutcome, "replayed">), replayed: raw.startsWith("1") } as ReserveOutcome;
  }

  /** Returns a live reservation's stock to available. */
  release(orderId: string, reason: ReleaseReasonName): Promise<SettleOutcome> {
    return this.#settle(orderId, "released", "available", reason);
  }

  /** Turns a live reservation into sold stock. */
  commit(orderId: string): Promise<SettleOutcome> {
    return this.#settle(orderId, "committed", "committed", "");
  }

  async #settle(orderId: string, state: "released" | "committed", field: string, reason: string): Promise<SettleOutcome> {
    const raw = await this.#redis.stockSettle(this.keys("reservation", orderId), state, field, this.keys("stock", ""), reason, this.lifetimeMs);
    const outcome = JSON.parse(raw) as SettleOutcome;
    return outcome.kind === "nothing" ? outcome : { ...outcome, orderId };
  }

  /** Every order's reservation state (reserved, committed, released, rejected), by order id; meant for the checker. */
  async reservationStates(): Promise<Map<string, string>> {
    const states = new Map<string, string>();
    const prefix = this.keys("reservation", "");
    let cursor = "0";
    do {
      const [next, found] = await this.#redis.scan(cursor, "MATCH", this.keys("reservation", "*"), "COUNT", 1000);
      cursor = next;
      const pipeline = this.#redis.pipeline();
      for (const key of found) pipeline.hget(key, "state");
      const replies = (await pipeline.exec()) ?? [];
      found.forEach((key, at) => {
        const state = replies[at]?.[1];
        if (typeof state === "string") states.set(key.slice(prefix.length), state);
      });
    } while (cursor !== "0");
    return states;
  }

  /**
   * Checks the invariants of every SKU: no negative quantity, `reserved` equal to the sum of live
   * reservations and `committed` at least the sum of committed ones (their records expire, the
   * units stay sold) — found by scanning reservation keys; meant for tests and the checker.
   */
  async checkConservation(): Promise<string[]> {
    const heldBySku = new Map<string, number>();
    const soldBySku = new Map<string, number>();
    let cursor = "0";
    do {
      const [next, found] = await this.#redis.scan(cursor, "MATCH", this.keys("reservation", "*"), "COUNT", 1000);
      cursor = next;
      for (const key of found) {
        const [state, lines] = await this.#redis.hmget(key, "state", "lines");
        const tally = state === "reserved" ? heldBySku : state === "committed" ? soldBySku : undefined;
        if (tally === undefined || lines === null) continue;
        for (const line of JSON.parse(lines) as Line[]) tally.set(line.productId, (tally.get(line.productId) ?? 0) + line.quantity);
      }
    } while (cursor !== "0");
    const violations: string[] = [];
    for (const level of await this.listStock()) {
      if (level.available < 0 || level.reserved < 0 || level.committed < 0) violations.push(`${level.sku}: negative quantity ${JSON.stringify(level)}`);
      const held = heldBySku.get(level.sku) ?? 0;
      if (held !== level.reserved) violations.push(`${level.sku}: reserved is ${level.reserved} but live reservations hold ${held}`);
      // Committed reservation records expire (REDIS_DEDUP_TTL_MS) while the units stay sold: the
      // count may exceed what the records still hold, never fall below it.
      const sold = soldBySku.get(level.sku) ?? 0;
      if (sold > level.committed) violations.push(`${level.sku}: committed is ${level.committed} but committed reservations hold ${sold}`);
    }
    return violations;
  }
}
