/**
 * The payment processor on real Redis: one charge per order, recorded outcomes, refunds once — also
 * across a crash between the processor's answer and our record, a timed-out call, a lapsed claim,
 * a flushed script cache; and, with dedup switched off, the duplicates the checker must catch. The
 * record and the processor's books expire, each no sooner than any redelivery can come.
 */
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { PaymentProcessor } from "./processor.ts";
import { createGatewayPolicy } from "./resilience.ts";
import { TransientError } from "../../lib/errors.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { GatewayUnavailableError, type PaymentGateway } from "./gateway.ts";
import { RedisLedger, SimulatedGateway } from "./simulated-gateway.ts";
import { DEFAULT_DEDUP_LIFETIME_MS, longestRedeliveryMs } from "../../lib/lifetimes.ts";

const log = createLogger("test", "silent", new Writable({ write: (_c, _e, done) => done() }));
let r: TestRedis;
let gateway: SimulatedGateway;
let processor: PaymentProcessor;

const policy = () => createGatewayPolicy({ maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2, timeoutMs: 1000, breakerWindow: 50, breakerHalfOpenAfterMs: 1000 });

let ledger: RedisLedger;
const recordLifetimeMs = DEFAULT_DEDUP_LIFETIME_MS;

beforeEach(async () => {
  r = await openTestRedis();
  ledger = new RedisLedger(r.redis, r.keys, recordLifetimeMs);
  gateway = new SimulatedGateway({ ledger });
  processor = new PaymentProcessor({ gateway, policy: policy(), redis: r.redis, keys: r.keys, recordLifetimeMs, log });
});

const chargesOf = async (orderId: string) => (await ledger.entries()).filter((e) => e.kind === "charge" && e.orderId === orderId);

afterEach(async () => {
  await r.close();
});

const tokenFor = async (card: string) => (await gateway.tokenize(card)).token;

describe("payment processor", () => {
  it("charges once; a repeat returns the record without calling the gateway", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const first = await processor.charge({ orderId, token, amountMinor: 104999n, currency: "USD" });
    expect(first).toMatchObject({ kind: "charged", amountMinor: 104999n, replayed: false });
    const calls = gateway.calls.charge;
    expect(await processor.charge({ orderId, token, amountMinor: 104999n, currency: "USD" })).toEqual({ ...first, replayed: true });
    expect(gateway.calls.charge).toBe(calls);
    const restarted = new PaymentProcessor({ gateway: new SimulatedGateway(), policy: policy(), redis: r.redis, keys: r.keys, recordLifetimeMs, log });
    expect(await restarted.charge({ orderId, token, amountMinor: 1n, currency: "USD" })).toEqual({ ...first, replayed: true });
  });

  it.each([
    ["4000000000000002", "DECLINED", 1],
    ["4000000000009995", "INSUFFICIENT_FUNDS", 1],
    ["4000000000000119", "PROCESSOR_UNAVAILABLE", 3],
  ])("records a failed charge for %s as %s after %s attempt(s)", async (card, code, attempts) => {
    const orderId = randomUUID();
    const token = await tokenFor(card);
    expect(await processor.charge({ orderId, token, amountMinor: 100n, currency: "USD" })).toMatchObject({ kind: "failed", code, attempts, replayed: false });
    expect(await processor.charge({ orderId, token, amountMinor: 100n, currency: "USD" })).toMatchObject({ kind: "failed", code, replayed: true });
  });

  it("takes one charge when the same order is charged ten times at once", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => processor.charge({ orderId, token, amountMinor: 100n, currency: "USD" })));
    const charged = results.flatMap((x) => (x.status === "fulfilled" && x.value.kind === "charged" ? [x.value.paymentId] : []));
    expect(new Set(charged).size).toBe(1);
    expect(results.filter((x) => x.status === "rejected").every((x) => (x).reason instanceof Error)).toBe(true);
    expect(await processor.charge({ orderId, token, amountMinor: 100n, currency: "USD" })).toMatchObject({ kind: "charged", paymentId: charged[0], replayed: true });
  });

  it("refunds once, and has nothing to refund without a charge", async () => {
    const orderId = randomUUID();
    await processor.charge({ orderId, token: await tokenFor("4242424242424242"), amountMinor: 500n, currency: "USD" });
    const refund = await processor.refund({ orderId, amountMinor: 500n, currency: "USD" });
    expect(refund).toMatchObject({ kind: "refunded", amountMinor: 500n, replayed: false });
    const calls = gateway.calls.refund;
    expect(await processor.refund({ orderId, amountMinor: 500n, currency: "USD" })).toEqual({ ...refund, replayed: true });
    expect(gateway.calls.refund).toBe(calls);
    const neverCharged = randomUUID();
    expect(await processor.refund({ orderId: neverCharged, amountMinor: 1n, currency: "USD" })).toEqual({ kind: "nothing", reason: "no charge recorded" });
    // A charge command that arrives after its order was compensated takes nothing.
    expect(await processor.charge({ orderId: neverCharged, token: await tokenFor("4242424242424242"), amountMinor: 1n, currency: "USD" })).toMatchObject({ kind: "failed", code: "CANCELLED" });
    expect(await chargesOf(neverCharged)).toEqual([]);
    const declined = randomUUID();
    await processor.charge({ orderId: declined, token: await tokenFor("4000000000000002"), amountMinor: 1n, currency: "USD" });
    expect(await processor.refund({ orderId: declined, amountMinor: 1n, currency: "USD" })).toEqual({ kind: "nothing", reason: "the charge failed" });
  });

  it("gets the same charge back after a crash between the processor's answer and our record", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    // The processor charged under the order's key, then our instance died before writing its record.
    const taken = await gateway.charge({ idempotencyKey: `${orderId}:charge`, orderId, token, amountMinor: 700n, currency: "USD" });
    const outcome = await processor.charge({ orderId, token, amountMinor: 700n, currency: "USD" });
    expect(outcome).toMatchObject({ kind: "charged", paymentId: taken.chargeId, replayed: false });
    expect(await chargesOf(orderId)).toHaveLength(1);
  });

  it("records nothing when the call timed out, and the retry takes no second charge", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const slow = new SimulatedGateway({ ledger, latencyMs: 200 });
    const impatient = new PaymentProcessor({ gateway: slow, policy: createGatewayPolicy({ maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 2, timeoutMs: 20, breakerWindow: 50, breakerHalfOpenAfterMs: 1000 }), redis: r.redis, keys: r.keys, recordLifetimeMs, log });
    await expect(impatient.charge({ orderId, token, amountMinor: 300n, currency: "USD" })).rejects.toBeInstanceOf(TransientError);
    expect(await r.redis.hgetall(r.keys("payment", orderId))).toEqual({});
    expect(await r.redis.exists(r.keys("payment", orderId, "claim"))).toBe(0);
    const outcome = await processor.charge({ orderId, token, amountMinor: 300n, currency: "USD" });
    expect(outcome.kind).toBe("charged");
    expect(await chargesOf(orderId)).toHaveLength(1);
  });

  it("never reports a charge as failed while a timed-out attempt may have charged: the retry finds the charge", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const inner = new SimulatedGateway({ ledger });
    // The first call is slow (it books after its caller gave up); every later call fails transiently.
    let calls = 0;
    const firstSlowThenFlaky: PaymentGateway = {
      tokenize: (card) => inner.tokenize(card),
      refund: (request) => inner.refund(request),
      lookup: (key) => inner.lookup(key),
      async charge(request) {
        calls += 1;
        if (calls > 1) throw new GatewayUnavailableError("processor error, try again");
        await new Promise((resolve) => setTimeout(resolve, 100));
        return inner.charge(request);
      },
    };
    const unlucky = new PaymentProcessor({ gateway: firstSlowThenFlaky, policy: createGatewayPolicy({ maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2, timeoutMs: 20, breakerWindow: 50, breakerHalfOpenAfterMs: 1000 }), redis: r.redis, keys: r.keys, recordLifetimeMs, log });
    await expect(unlucky.charge({ orderId, token, amountMinor: 700n, currency: "USD" })).rejects.toBeInstanceOf(TransientError);
    expect(await r.redis.hgetall(r.keys("payment", orderId))).toEqual({});
    const [booked] = await waitFor(async () => ((await chargesOf(orderId)).length === 1 ? chargesOf(orderId) : undefined), { what: "the timed-out call to book its charge" });
    // The command is tried again: every call fails now, but the gateway has the charge under the key.
    const outcome = await unlucky.charge({ orderId, token, amountMinor: 700n, currency: "USD" });
    expect(outcome).toMatchObject({ kind: "charged", paymentId: booked?.id, replayed: false });
    expect(await r.redis.hget(r.keys("payment", orderId), "state")).toBe("charged");
  });

  it("does not write an outcome once its claim lapsed and another holder took over", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const slow = new SimulatedGateway({ ledger, latencyMs: 150 });
    const stalled = new PaymentProcessor({ gateway: slow, policy: policy(), redis: r.redis, keys: r.keys, recordLifetimeMs, log, claimMs: 30 });
    const late = stalled.charge({ orderId, token, amountMinor: 100n, currency: "USD" });
    const claim = r.keys("payment", orderId, "claim");
    await waitFor(async () => (await r.redis.exists(claim)) === 0, { intervalMs: 5, what: "the 30 ms claim to lapse while the call is in flight" });
    await r.redis.set(claim, "someone-else", "PX", 10_000);
    await expect(late).rejects.toBeInstanceOf(TransientError);
    expect(await r.redis.hgetall(r.keys("payment", orderId))).toEqual({});
  });

  it("keeps working after the script cache was flushed", async () => {
    const first = randomUUID();
    await processor.charge({ orderId: first, token: await tokenFor("4242424242424242"), amountMinor: 1n, currency: "USD" });
    await r.redis.script("FLUSH");
    const second = randomUUID();
    expect(await processor.charge({ orderId: second, token: await tokenFor("4242424242424242"), amountMinor: 1n, currency: "USD" })).toMatchObject({ kind: "charged" });
    expect(await chargesOf(second)).toHaveLength(1);
  });

  it("charges again on every repeat with dedup switched off (the negative control's premise)", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    const careless = new PaymentProcessor({ gateway, policy: policy(), redis: r.redis, keys: r.keys, recordLifetimeMs, log, dedup: false });
    await careless.charge({ orderId, token, amountMinor: 1n, currency: "USD" });
    await careless.charge({ orderId, token, amountMinor: 1n, currency: "USD" });
    expect(await chargesOf(orderId)).toHaveLength(2);
  });

  it("keeps the order's record and the books for the dedup lifetime after each write, never less than the longest redelivery", async () => {
    const orderId = randomUUID();
    const token = await tokenFor("4242424242424242");
    await processor.charge({ orderId, token, amountMinor: 500n, currency: "USD" });
    const lifetimes = async () => Promise.all([r.keys("payment", orderId), r.keys("gateway", "key", `${orderId}:charge`), r.keys("gateway", "entries")].map((key) => r.redis.pttl(key)));
    for (const ttl of await lifetimes()) {
      expect(ttl).toBeGreaterThan(longestRedeliveryMs());
      expect(ttl).toBeLessThanOrEqual(recordLifetimeMs);
    }
    // Each write refreshes the record: the refund writes it again.
    await r.redis.pexpire(r.keys("payment", orderId), 60_000);
    await processor.refund({ orderId, amountMinor: 500n, currency: "USD" });
    expect(await r.redis.pttl(r.keys("payment", orderId))).toBeGreaterThan(longestRedeliveryMs());
  });

  it("drops entries older than their lifetime from the books as it books", async () => {
    let nowMs = 1_000_000;
    const books = new RedisLedger(r.redis, r.keys, 10_000, () => nowMs);
    await books.book("a:charge", { kind: "charge", id: "ch_a", orderId: "a", amountMinor: "1" });
    nowMs += 10_000;
    await books.book("b:charge", { kind: "charge", id: "ch_b", orderId: "b", amountMinor: "1" });
    expect((await books.entries()).map((entry) => entry.id)).toEqual(["ch_a", "ch_b"]);
    nowMs += 1;
    await books.book("c:charge", { kind: "charge", id: "ch_c", orderId: "c", amountMinor: "1" });
    expect((await books.entries()).map((entry) => entry.id)).toEqual(["ch_b", "ch_c"]);
  });
});
