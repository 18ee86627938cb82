/** The payment processor on real Redis: one charge per order, recorded outcomes, refunds once. */
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { PaymentProcessor } from "./processor.ts";
import { createGatewayPolicy } from "./resilience.ts";
import { SimulatedGateway } from "./simulated-gateway.ts";

const log = createLogger("test", "silent", new Writable({ write: (_c, _e, done) => done() }));
let r: TestRedis;
let gateway: SimulatedGateway;
let processor: PaymentProcessor;

const policy = () => createGatewayPolicy({ maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2, timeoutMs: 1000, breakerThreshold: 50, breakerHalfOpenAfterMs: 1000 });

beforeEach(async () => {
  r = await openTestRedis();
  gateway = new SimulatedGateway();
  processor = new PaymentProcessor({ gateway, policy: policy(), redis: r.redis, keys: r.keys, log });
});

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
    const restarted = new PaymentProcessor({ gateway: new SimulatedGateway(), policy: policy(), redis: r.redis, keys: r.keys, log });
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
    expect(await processor.refund({ orderId: randomUUID(), amountMinor: 1n, currency: "USD" })).toEqual({ kind: "nothing", reason: "no charge recorded" });
    const declined = randomUUID();
    await processor.charge({ orderId: declined, token: await tokenFor("4000000000000002"), amountMinor: 1n, currency: "USD" });
    expect(await processor.refund({ orderId: declined, amountMinor: 1n, currency: "USD" })).toEqual({ kind: "nothing", reason: "the charge failed" });
  });
});
