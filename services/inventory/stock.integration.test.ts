/**
 * The stock store on real Redis: all-or-none reservations, idempotent replays, release, commit,
 * expiry, the last unit under concurrency, a flushed script cache, and conservation under random
 * operation sequences; and the lifetime of each key (catalog and stock permanent, a reservation
 * kept while it holds stock and expiring after it settled).
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { StockStore } from "./stock.ts";
import { longestRedeliveryMs } from "../../lib/lifetimes.ts";

let r: TestRedis;
let store: StockStore;

const lifetimeMs = longestRedeliveryMs() + 60_000;

const products = [
  { sku: "laptop", name: "Laptop", currency: "USD", priceMinor: 99999n, stock: 5 },
  { sku: "mouse", name: "Mouse", currency: "USD", priceMinor: 2500n, stock: 10 },
  { sku: "cable", name: "Cable", currency: "USD", priceMinor: 500n, stock: 3 },
];

beforeEach(async () => {
  r = await openTestRedis();
  store = new StockStore(r.redis, r.keys, lifetimeMs);
  await store.seedCatalog(products);
});

afterEach(async () => {
  await r.close();
});

describe("stock store", () => {
  it("reserves all lines or none, listing every shortage", async () => {
    const short = await store.reserve(randomUUID(), [{ productId: "laptop", quantity: 2 }, { productId: "cable", quantity: 4 }, { productId: "unicorn", quantity: 1 }], 60_000, 0);
    expect(short).toEqual({ kind: "rejected", replayed: false, shortages: [{ productId: "cable", requested: 4, available: 3 }, { productId: "unicorn", requested: 1, available: 0 }] });
    expect((await store.getStock("laptop"))?.available).toBe(5);
    const orderId = randomUUID();
    const ok = await store.reserve(orderId, [{ productId: "laptop", quantity: 1 }, { productId: "laptop", quantity: 1 }], 60_000, 1000);
    expect(ok).toEqual({ kind: "reserved", reservationId: `res-${orderId}`, lines: [{ productId: "laptop", quantity: 2 }], expiresAtMs: 61_000, replayed: false });
    expect(await store.getStock("laptop")).toEqual({ sku: "laptop", available: 3, reserved: 2, committed: 0, onHand: 5 });
  });

  it("keeps the catalog and stock for good, a reservation while it holds stock, and a settled one for its lifetime", async () => {
    for (const key of [r.keys("product", "laptop"), r.keys("products"), r.keys("stock", "laptop"), r.keys("catalog", "version")]) expect(await r.redis.pttl(key)).toBe(-1);
    const settledLifetime = async (orderId: string) => {
      const ttl = await r.redis.pttl(r.keys("reservation", orderId));
      return ttl > longestRedeliveryMs() && ttl <= lifetimeMs;
    };
    const [held, sold, returned, refused] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    for (const orderId of [held, sold, returned]) await store.reserve(orderId, [{ productId: "mouse", quantity: 1 }], 60_000, 0);
    await store.reserve(refused, [{ productId: "cable", quantity: 99 }], 60_000, 0);
    await store.commit(sold);
    await store.release(returned, "COMPENSATION");
    expect(await r.redis.pttl(r.keys("reservation", held))).toBe(-1);
    expect(await settledLifetime(sold)).toBe(true);
    expect(await settledLifetime(returned)).toBe(true);
    expect(await settledLifetime(refused)).toBe(true);
    // The saga's EXPIRED release settles it too.
    expect(await store.release(held, "EXPIRED")).toMatchObject({ kind: "released" });
    expect(await settledLifetime(held)).toBe(true);
  });

  it("answers a replay with the recorded outcome and changes nothing, even after stock changed", async () => {
    const orderId = randomUUID();
    const first = await store.reserve(orderId, [{ productId: "cable", quantity: 3 }], 60_000, 0);
    await store.setStock("cable", 100);
    const again = await store.reserve(orderId, [{ productId: "cable", quantity: 3 }], 60_000, 5);
    expect(again).toEqual({ ...first, replayed: true });
    expect((await store.getStock("cable"))?.reserved).toBe(3);
  });

  it("releases and commits once", async () => {
    const a = randomUUID();
    const b = randomUUID();
    await store.reserve(a, [{ productId: "mouse", quantity: 4 }], 60_000, 0);
    await store.reserve(b, [{ productId: "mouse", quantity: 1 }], 60_000, 0);
    expect(await store.release(a, "COMPENSATION")).toMatchObject({ kind: "released", replayed: false, lines: [{ productId: "mouse", quantity: 4 }] });
    expect(await store.release(a, "COMPENSATION")).toMatchObject({ kind: "released", replayed: true });
    expect(await store.commit(b)).toMatchObject({ kind: "committed", replayed: false });
    expect(await store.commit(b)).toMatchObject({ kind: "committed", replayed: true });
    expect(await store.commit(a)).toEqual({ kind: "nothing", state: "released" });
    expect(await store.release(randomUUID(), "CANCELLED")).toEqual({ kind: "nothing", state: "none" });
    expect(await store.getStock("mouse")).toEqual({ sku: "mouse", available: 9, reserved: 0, committed: 1, onHand: 10 });
  });

  it("releases an expired reservation once, returning its stock; a commit after it finds nothing to sell", async () => {
    const orderId = randomUUID();
    await store.reserve(orderId, [{ productId: "laptop", quantity: 2 }], 1000, 0);
    const released = await store.release(orderId, "EXPIRED");
    expect(released).toMatchObject({ kind: "released", orderId, lines: [{ productId: "laptop", quantity: 2 }], replayed: false });
    expect(await store.release(orderId, "EXPIRED")).toMatchObject({ kind: "released", replayed: true });
    expect(await store.commit(orderId)).toEqual({ kind: "nothing", state: "released" });
    expect((await store.getStock("laptop"))?.available).toBe(5);
  });

  it("keeps working after the script cache is flushed", async () => {
    await store.reserve(randomUUID(), [{ productId: "mouse", quantity: 1 }], 60_000, 0);
    await r.redis.script("FLUSH");
    expect((await store.reserve(randomUUID(), [{ productId: "mouse", quantity: 1 }], 60_000, 0)).kind).toBe("reserved");
  });

  it("re-seeding keeps live stock; changes to unknown SKUs or below zero are refused", async () => {
    await store.reserve(randomUUID(), [{ productId: "laptop", quantity: 1 }], 60_000, 0);
    expect(await store.seedCatalog(products)).toBe(0);
    expect((await store.getStock("laptop"))?.available).toBe(4);
    await expect(store.setStock("unicorn", 5)).rejects.toThrow(/unknown sku/);
    await expect(store.adjustStock("cable", -4)).rejects.toThrow(/would be -1/);
    expect((await store.adjustStock("cable", 2)).available).toBe(5);
  });

  it("sells the last units to exactly as many concurrent orders as there are units", async () => {
    await store.setStock("laptop", 5);
    const connections = Array.from({ length: 4 }, () => new Redis(inject("redisUrl")));
    try {
      const stores = connections.map((c) => new StockStore(c, r.keys));
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 4].reserve(randomUUID(), [{ productId: "laptop", quantity: 1 }], 60_000, 0)));
      expect(outcomes.filter((o) => o.kind === "reserved")).toHaveLength(5);
      expect(outcomes.filter((o) => o.kind === "rejected")).toHaveLength(15);
      expect(await store.getStock("laptop")).toMatchObject({ available: 0, reserved: 5 });
      expect(await store.checkConservation()).toEqual([]);
    } finally {
      for (const c of connections) c.disconnect();
    }
  });

  it("reports stock numbers that disagree with the reservations", async () => {
    await store.setStock("laptop", 5);
    const orderId = randomUUID();
    await store.reserve(orderId, [{ productId: "laptop", quantity: 2 }], 60_000, 0);
    await store.commit(orderId);
    expect(await store.checkConservation()).toEqual([]);
    await r.redis.hincrby(r.keys("stock", "laptop"), "committed", -1);
    await r.redis.hincrby(r.keys("stock", "laptop"), "reserved", 1);
    expect(await store.checkConservation()).toEqual([
      "laptop: reserved is 1 but live reservations hold 0",
      "laptop: committed is 1 but committed reservations hold 2",
    ]);
  });

  it("conserves stock under any sequence of operations", async () => {
    const skus = ["laptop", "mouse", "cable"] as const;
    const op = fc.oneof(
      fc.record({ kind: fc.constant("reserve" as const), order: fc.integer({ min: 0, max: 5 }), lines: fc.array(fc.record({ productId: fc.constantFrom(...skus), quantity: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 3 }) }),
      fc.record({ kind: fc.constantFrom("release" as const, "commit" as const), order: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("expire" as const), order: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("adjust" as const), sku: fc.constantFrom(...skus), delta: fc.integer({ min: -3, max: 5 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const run = randomUUID().slice(0, 8);
        const orders = Array.from({ length: 6 }, (_, i) => `${run}-${i}`);
        const onHand = async () => Object.fromEntries(await Promise.all(skus.map(async (s) => [s, (await store.getStock(s))!.onHand] as const)));
        let expected = await onHand();
        for (const o of ops) {
          if (o.kind === "reserve") await store.reserve(orders[o.order], o.lines, 1000, 0);
          else if (o.kind === "release") await store.release(orders[o.order], "COMPENSATION");
          else if (o.kind === "commit") await store.commit(orders[o.order]);
          else if (o.kind === "expire") await store.release(orders[o.order], "EXPIRED");
          else if (o.kind === "adjust") {
            const before = (await store.getStock(o.sku))!.available;
            if (before + o.delta >= 0) {
              await store.adjustStock(o.sku, o.delta);
              expected = { ...expected, [o.sku]: expected[o.sku] + o.delta };
            }
          }
          expect(await store.checkConservation()).toEqual([]);
          expect(await onHand()).toEqual(expected);
        }
      }),
      { numRuns: 40 },
    );
  });
});
