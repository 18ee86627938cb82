/**
 * Idempotency-Key records on the real Redis: a key binds one order for its lifetime, racing first
 * attempts and racing takeovers of an expired lease each let exactly one through, a released lease
 * is taken over at once, a takeover keeps the record's 24 h lifetime, and the fingerprint is a keyed
 * HMAC that every instance computes alike.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlaceOrderRequestSchema } from "../../gen/orderflow/v1/order_service_pb.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { IDEMPOTENCY_LIFETIME_S, IdempotencyKeys, type Binding } from "./idempotency.ts";

let r: TestRedis;

beforeAll(async () => {
  r = await openTestRedis();
});

afterAll(async () => {
  await r?.close();
});

const fresh = (): Binding => ({ orderId: randomUUID(), eventId: randomUUID(), createdAtMs: Date.now() });

/** Redis's clock, in ms: leases are measured on it. */
const redisNowMs = async () => {
  const [seconds, micros] = await r.redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
};

/** Waits until the key's lease has run out on Redis's clock. */
const leaseOver = (key: string) =>
  waitFor(async () => Number(await r.redis.hget(r.keys("idem", key), "lease_until")) <= (await redisNowMs()), { what: `the lease of ${key} to run out` });

describe("Idempotency-Key records", () => {
  it("binds a key to the first attempt's order: racing first attempts get one claim, the rest are told it is in progress", async () => {
    const keys = new IdempotencyKeys(r.redis, r.keys, { leaseMs: 60_000, secret: "s" });
    const key = randomUUID();
    const claims = await Promise.all(Array.from({ length: 10 }, () => keys.claim(key, "fp", fresh())));
    expect(claims.filter((c) => c.kind === "claimed")).toHaveLength(1);
    expect(claims.filter((c) => c.kind === "busy")).toHaveLength(9);
    expect(await keys.claim(key, "another body", fresh())).toEqual({ kind: "conflict" });
  });

  it("hands an expired lease to exactly one of racing retries, under the bound order id, keeping the record's lifetime", async () => {
    const keys = new IdempotencyKeys(r.redis, r.keys, { leaseMs: 300, secret: "s" });
    const key = randomUUID();
    const first = await keys.claim(key, "fp", fresh());
    expect(first.kind).toBe("claimed");
    const bound = first.kind === "claimed" ? first.binding : undefined;
    // The attempt "crashed": it never completes. Its lease runs out; then ten retries race.
    await leaseOver(key);
    const ttlBefore = await r.redis.ttl(r.keys("idem", key));
    const retries = await Promise.all(Array.from({ length: 10 }, () => keys.claim(key, "fp", fresh())));
    const takeovers = retries.filter((c) => c.kind === "taken-over");
    expect(takeovers).toHaveLength(1);
    expect(retries.filter((c) => c.kind === "busy")).toHaveLength(9);
    expect(takeovers[0]).toEqual({ kind: "taken-over", binding: bound });
    const ttlAfter = await r.redis.ttl(r.keys("idem", key));
    expect(ttlAfter).toBeGreaterThan(IDEMPOTENCY_LIFETIME_S - 60);
    expect(ttlAfter).toBeLessThanOrEqual(ttlBefore);
    await keys.complete(key, bound?.orderId ?? "");
    expect(await keys.claim(key, "fp", fresh())).toEqual({ kind: "done", binding: bound });
  });

  it("lets a retry take over at once after a failed publish released the lease, and keeps the binding", async () => {
    const keys = new IdempotencyKeys(r.redis, r.keys, { leaseMs: 60_000, secret: "s" });
    const key = randomUUID();
    const first = await keys.claim(key, "fp", fresh());
    const bound = first.kind === "claimed" ? first.binding : undefined;
    expect((await keys.claim(key, "fp", fresh())).kind).toBe("busy");
    await keys.release(key, bound?.orderId ?? "");
    expect(await keys.claim(key, "fp", fresh())).toEqual({ kind: "taken-over", binding: bound });
    // Settling under another order id (a stale attempt) changes nothing.
    await keys.complete(key, randomUUID());
    expect((await keys.claim(key, "fp", fresh())).kind).toBe("busy");
  });

  it("fingerprints with a keyed HMAC: alike on every instance, different under another secret or with another card", async () => {
    const requestWith = (cardNumber: string) => create(PlaceOrderRequestSchema, { customerId: "c-1", currency: "USD", payment: { cardNumber } });
    const request = requestWith("4242424242424242");
    const configured = await new IdempotencyKeys(r.redis, r.keys, { leaseMs: 1000, secret: "one" }).fingerprint(request);
    expect(configured).toMatch(/^[0-9a-f]{64}$/);
    expect(await new IdempotencyKeys(r.redis, r.keys, { leaseMs: 1000, secret: "two" }).fingerprint(request)).not.toBe(configured);
    // Without a configured secret, the instances share the one the first of them made in Redis.
    const [a, b] = await Promise.all([1, 2].map(() => new IdempotencyKeys(r.redis, r.keys, { leaseMs: 1000 }).fingerprint(request)));
    expect(a).toBe(b);
    expect(a).not.toBe(configured);
    expect(await r.redis.get(r.keys("idem-secret"))).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await new IdempotencyKeys(r.redis, r.keys, { leaseMs: 1000, secret: "one" }).fingerprint(requestWith("4000000000000002"))).not.toBe(configured);
  });
});
