/**
 * Every Redis key the running system writes has its documented lifetime (ARCHITECTURE.md, "Redis
 * keys and their lifetimes"): orders that complete, fail on payment and fail on stock go through
 * the five real services; once they are settled, every key under the test's prefix is read. The
 * catalog, stock and the orchestrator's work indexes are permanent; every other key expires —
 * dedup records no sooner than the longest redelivery the topic catalog allows, the read model
 * within READ_MODEL_TTL_MS.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEDUP_LIFETIME_MS, DEFAULT_READ_MODEL_LIFETIME_MS, longestRedeliveryMs } from "../../lib/lifetimes.ts";
import { getOrder, terminalStatuses } from "../../services/cli/order-api.ts";
import { testCards } from "../../services/cli/samples.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { testOrderApi } from "../harness/auth.ts";
import { openTestKafka, type TestKafka } from "../harness/kafka.ts";
import { startSystem, type RunningSystem } from "../harness/processes.ts";
import { openTestRedis, type TestRedis } from "../harness/redis.ts";
import { createCatalogTopics, placeOrder, serviceEnv } from "../harness/system.ts";
import { waitFor } from "../harness/wait.ts";

/** How long a kind of key lives, as ARCHITECTURE.md documents it. */
type Lifetime = "permanent" | "dedup" | "read model" | "short";

/** Key patterns (after the prefix) and their lifetimes; the first that matches decides. */
const documented: readonly [RegExp, Lifetime][] = [
  [/^(product:[^:]+|products|stock:[^:]+|catalog:version)$/, "permanent"],
  [/^(saga-due|saga-outbox-since|parked|control:paused|idem-secret)$/, "permanent"],
  [/^(saga:[^:]+:flushing|payment:[^:]+:claim|idem:.+|ratelimit:place-order:.+|email-rate:.+|readmodel:rebuild)$/, "short"],
  [/^(saga:[^:]+|payment:[^:]+|reservation:[^:]+|email:.+|gateway:key:.+|gateway:entries|admin:replayed)$/, "dedup"],
  [/^((gen\d+:)?(order:[^:]+|order:[^:]+:events|order:[^:]+:seen|orders|orders:customer:.+)|readmodel:live)$/, "read model"],
];

let t: TestKafka;
let r: TestRedis;
let system: RunningSystem;

beforeAll(async () => {
  t = await openTestKafka("lifetimes");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await new StockStore(r.redis, r.keys).seedCatalog([
    { sku: "lamp", name: "Lamp", currency: "USD", priceMinor: 4500n, stock: 10 },
    { sku: "scarce", name: "Scarce", currency: "USD", priceMinor: 1000n, stock: 1 },
  ]);
  system = await startSystem(serviceEnv(t, r.prefix, { SAGA_TICK_MS: "100" }));
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await r?.close();
  await t?.close();
});

/** Every key under the test's prefix with its remaining lifetime in ms (-1: none). */
async function keysWithLifetimes(): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, keys] = await r.redis.scan(cursor, "MATCH", `${r.prefix}:*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) found.set(key.slice(r.prefix.length + 1), await r.redis.pttl(key));
  } while (cursor !== "0");
  return found;
}

describe("Redis key lifetimes", () => {
  it("after orders complete, fail on payment and fail on stock, every key but the permanent ones expires, dedup records no sooner than any redelivery", async () => {
    const orders = [
      await placeOrder(testOrderApi(system.apiUrl), [{ product_id: "lamp", quantity: 1, price: "45.00" }]),
      await placeOrder(testOrderApi(system.apiUrl), [{ product_id: "lamp", quantity: 1, price: "45.00" }], testCards.declined),
      await placeOrder(testOrderApi(system.apiUrl), [{ product_id: "scarce", quantity: 2, price: "10.00" }]),
    ];
    for (const orderId of orders) {
      await waitFor(async () => terminalStatuses.has((await getOrder(testOrderApi(system.apiUrl), orderId).catch(() => undefined))?.status ?? ""), { timeoutMs: 30_000, what: `order ${orderId} to end` });
    }
    // Settled: the stock short order's charge is refunded, every email is sent, no saga has work left.
    await waitFor(async () => (await getOrder(testOrderApi(system.apiUrl), orders[2] ?? "")).refunded, { timeoutMs: 30_000, what: "the refund of the stock-short order" });
    const emailKeys = () => r.redis.keys(`${r.prefix}:email:*`);
    await waitFor(async () => {
      const keys = await emailKeys();
      const sent = await Promise.all(keys.map((key) => r.redis.get(key)));
      return keys.length === orders.length && sent.every((value) => value?.startsWith("sent:"));
    }, { timeoutMs: 30_000, what: "an email sent for each order" });
    await waitFor(async () => (await r.redis.zcard(r.keys("saga-outbox-since"))) === 0 && (await r.redis.zcard(r.keys("saga-due"))) === 0, { timeoutMs: 30_000, what: "every saga to have no work left" });

    const lifetimes = await keysWithLifetimes();
    const kinds = new Map<Lifetime, string[]>();
    const wrong: string[] = [];
    for (const [key, ttl] of lifetimes) {
      const kind = documented.find(([pattern]) => pattern.test(key))?.[1];
      if (kind === undefined) {
        // A key nobody documented must at least expire.
        if (ttl <= 0) wrong.push(`${key}: undocumented and never expires`);
        continue;
      }
      kinds.set(kind, [...(kinds.get(kind) ?? []), key]);
      if (kind === "permanent" && ttl !== -1) wrong.push(`${key}: documented permanent, expires in ${ttl} ms`);
      if (kind === "dedup" && !(ttl > longestRedeliveryMs() && ttl <= DEFAULT_DEDUP_LIFETIME_MS)) wrong.push(`${key}: a dedup record expiring in ${ttl} ms`);
      if (kind === "read model" && !(ttl > 0 && ttl <= DEFAULT_READ_MODEL_LIFETIME_MS)) wrong.push(`${key}: read model expiring in ${ttl} ms`);
      if (kind === "short" && !(ttl > 0 && ttl <= 24 * 60 * 60 * 1000)) wrong.push(`${key}: short-lived, expiring in ${ttl} ms`);
    }
    expect(wrong).toEqual([]);
    // The run wrote every kind of record the lifetimes are about (so the checks above had something to check).
    const written = [...lifetimes.keys()];
    for (const orderId of orders) {
      for (const key of [`saga:${orderId}`, `payment:${orderId}`, `reservation:${orderId}`, `order:${orderId}`, `order:${orderId}:events`, `order:${orderId}:seen`]) expect(written).toContain(key);
    }
    for (const pattern of [/^email:/, /^gateway:key:/, /^gateway:entries$/, /^orders$/, /^orders:customer:/, /^idem:/, /^idem-secret$/, /^ratelimit:place-order:/, /^stock:/]) expect(written.some((key) => pattern.test(key))).toBe(true);
  });
});
