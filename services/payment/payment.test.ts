import { describe, expect, it } from "vitest";
import { waitFor } from "../../test/harness/wait.ts";
import { CardDeclinedError, GatewayUnavailableError, InsufficientFundsError, InvalidInstrumentError } from "./gateway.ts";
import { BreakerOpenError, createGatewayPolicy } from "./resilience.ts";
import { SimulatedGateway, luhnValid } from "./simulated-gateway.ts";

const policyOptions = { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2, timeoutMs: 50, breakerWindow: 100, breakerHalfOpenAfterMs: 50 };

describe("simulated gateway", () => {
  const gateway = new SimulatedGateway();
  const charge = async (card: string) => gateway.charge({ idempotencyKey: card + Math.random(), orderId: "o-1", token: (await gateway.tokenize(card)).token, amountMinor: 100n, currency: "USD" });

  it("behaves like the Stripe test cards", async () => {
    await expect(charge("4242424242424242")).resolves.toMatchObject({ chargeId: expect.stringMatching(/^ch_/) as string });
    await expect(charge("4000000000000002")).rejects.toBeInstanceOf(CardDeclinedError);
    await expect(charge("4000000000009995")).rejects.toBeInstanceOf(InsufficientFundsError);
    await expect(charge("4000000000000119")).rejects.toBeInstanceOf(GatewayUnavailableError);
    await expect(charge("5555555555554444")).resolves.toBeDefined();
    await expect(gateway.tokenize("4242424242424241")).rejects.toBeInstanceOf(InvalidInstrumentError);
  });

  it("never puts the card number in the token, and keeps the last four", async () => {
    const { token, last4 } = await gateway.tokenize("4242 4242 4242 4242");
    expect(token).not.toContain("4242424242424242");
    expect(last4).toBe("4242");
    expect(luhnValid("79927398713")).toBe(false);
    expect(luhnValid("4000000000000002")).toBe(true);
  });

  it("answers a repeated idempotency key with the same charge", async () => {
    const { token } = await gateway.tokenize("4242424242424242");
    const a = await gateway.charge({ idempotencyKey: "k1", orderId: "o-1", token, amountMinor: 1n, currency: "USD" });
    expect(await gateway.charge({ idempotencyKey: "k1", orderId: "o-1", token, amountMinor: 1n, currency: "USD" })).toEqual(a);
    await expect(gateway.charge({ idempotencyKey: "k2", orderId: "o-2", token: "tok_bogus", amountMinor: 1n, currency: "USD" })).rejects.toBeInstanceOf(InvalidInstrumentError);
  });

  it("fails at the configured random rate", async () => {
    const flaky = new SimulatedGateway({ failureRate: 0.5, random: () => 0.1 });
    const { token } = await flaky.tokenize("4242424242424242");
    await expect(flaky.charge({ idempotencyKey: "x", orderId: "o-3", token, amountMinor: 1n, currency: "USD" })).rejects.toBeInstanceOf(GatewayUnavailableError);
  });
});

describe("gateway policy", () => {
  it("retries transient failures up to the bound, not refusals", async () => {
    const policy = createGatewayPolicy(policyOptions);
    let calls = 0;
    await expect(policy.execute(() => Promise.reject(new GatewayUnavailableError(`down ${++calls}`)))).rejects.toThrow("down 3");
    calls = 0;
    await expect(policy.execute(() => Promise.reject(new CardDeclinedError(`no ${++calls}`)))).rejects.toThrow("no 1");
    calls = 0;
    await expect(policy.execute(() => (++calls < 2 ? Promise.reject(new GatewayUnavailableError("once")) : Promise.resolve("ok")))).resolves.toBe("ok");
    expect(calls).toBe(2);
  });

  it("times out a slow call and retries it", async () => {
    const policy = createGatewayPolicy(policyOptions);
    let calls = 0;
    const result = await policy.execute(() => (++calls === 1 ? new Promise<string>(() => undefined) : Promise.resolve("fast")));
    expect(result).toBe("fast");
    expect(calls).toBe(2);
  });

  it("opens the breaker after repeated failures, fails fast with a retriable error, and half-opens later", async () => {
    const policy = createGatewayPolicy({ ...policyOptions, maxAttempts: 1, breakerWindow: 2 });
    const states: string[] = [];
    policy.onStateChange((s) => states.push(s));
    for (let i = 0; i < 2; i += 1) await expect(policy.execute(() => Promise.reject(new GatewayUnavailableError("down")))).rejects.toBeInstanceOf(GatewayUnavailableError);
    expect(policy.breakerState()).toBe("open");
    let called = false;
    const fast = policy.execute(() => Promise.resolve((called = true)));
    await expect(fast).rejects.toBeInstanceOf(BreakerOpenError);
    await expect(fast).rejects.toMatchObject({ retriable: true });
    expect(called).toBe(false);
    await waitFor(async () => (await policy.execute(() => Promise.resolve("again")).catch(() => undefined)) === "again", { what: "the breaker to half-open" });
    expect(policy.breakerState()).toBe("closed");
    expect(states).toContain("open");
  });

  it("stays closed through bursts of card-specific failures among successes, and opens when most calls fail", async () => {
    const policy = createGatewayPolicy({ ...policyOptions, maxAttempts: 1, breakerWindow: 40, breakerHalfOpenAfterMs: 60_000 });
    const failing = () => policy.execute(() => Promise.reject(new GatewayUnavailableError("processor error, try again"))).catch(() => undefined);
    const working = () => policy.execute(() => Promise.resolve("ok"));
    // Ten failures in a row (three flaky cards, four attempts each, arriving together) within a
    // healthy stream: 10% of the calls. A run of ten consecutive failures used to open it.
    for (let round = 0; round < 5; round += 1) {
      for (let i = 0; i < 10; i += 1) await failing();
      for (let i = 0; i < 90; i += 1) await working();
    }
    expect(policy.breakerState()).toBe("closed");
    // A processor that is down: every call fails.
    for (let i = 0; i < 40; i += 1) await failing();
    expect(policy.breakerState()).toBe("open");
  });
});
