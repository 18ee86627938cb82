/**
 * A simulated card processor with Stripe-style test cards: 4242424242424242 succeeds,
 * 4000000000000002 is declined, 4000000000009995 has insufficient funds, 4000000000000119 fails
 * transiently every time, any other Luhn-valid number succeeds. A simulation property: the
 * behaviour is written into the token (tok_ok_…, tok_declined_…), so any instance, also after a
 * restart, treats a token the same way. Latency and a random transient failure rate are settable
 * for load tests. Charges and refunds are idempotent per key within the process.
 */
import { randomBytes } from "node:crypto";
import { CardDeclinedError, GatewayUnavailableError, InsufficientFundsError, InvalidInstrumentError, type PaymentGateway } from "./gateway.ts";

type Behaviour = "ok" | "declined" | "nofunds" | "flaky";

const testCards: Readonly<Record<string, Behaviour>> = {
  "4242424242424242": "ok",
  "4000000000000002": "declined",
  "4000000000009995": "nofunds",
  "4000000000000119": "flaky",
};

/** The Luhn check every real card number passes. */
export function luhnValid(number: string): boolean {
  if (!/^\d{12,19}$/.test(number)) return false;
  let sum = 0;
  for (let i = 0; i < number.length; i += 1) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return sum % 10 === 0;
}

export interface SimulatedGatewayOptions {
  readonly latencyMs?: number;
  /** Share of calls (0..1) that fail transiently at random. */
  readonly failureRate?: number;
  readonly random?: () => number;
}

export class SimulatedGateway implements PaymentGateway {
  readonly #charges = new Map<string, { chargeId: string; processorReference: string }>();
  readonly #refunds = new Map<string, { refundId: string }>();
  readonly #known = new Set<string>();
  /** Calls made, for tests and the invariant checker. */
  readonly calls = { charge: 0, refund: 0 };

  constructor(private readonly options: SimulatedGatewayOptions = {}) {}

  tokenize(cardNumber: string): Promise<{ token: string; last4: string; brand: string }> {
    const digits = cardNumber.replace(/[\s-]/g, "");
    if (!luhnValid(digits)) return Promise.reject(new InvalidInstrumentError("card number is not valid"));
    const behaviour = testCards[digits] ?? "ok";
    return Promise.resolve({ token: `tok_${behaviour}_${randomBytes(8).toString("hex")}`, last4: digits.slice(-4), brand: digits.startsWith("4") ? "visa" : "card" });
  }

  async charge(request: { idempotencyKey: string; token: string; amountMinor: bigint; currency: string }) {
    this.calls.charge += 1;
    const earlier = this.#charges.get(request.idempotencyKey);
    if (earlier !== undefined) return earlier;
    await this.#work();
    const behaviour = /^tok_(ok|declined|nofunds|flaky)_[0-9a-f]+$/.exec(request.token)?.[1] as Behaviour | undefined;
    if (behaviour === undefined) throw new InvalidInstrumentError("unknown token");
    if (behaviour === "declined") throw new CardDeclinedError("card declined");
    if (behaviour === "nofunds") throw new InsufficientFundsError("insufficient funds");
    if (behaviour === "flaky") throw new GatewayUnavailableError("processor error, try again");
    const charge = { chargeId: `ch_${randomBytes(8).toString("hex")}`, processorReference: `sim_${randomBytes(6).toString("hex")}` };
    this.#charges.set(request.idempotencyKey, charge);
    this.#known.add(charge.chargeId);
    return charge;
  }

  async refund(request: { idempotencyKey: string; chargeId: string; amountMinor: bigint; currency: string }) {
    this.calls.refund += 1;
    const earlier = this.#refunds.get(request.idempotencyKey);
    if (earlier !== undefined) return earlier;
    await this.#work();
    if (!request.chargeId.startsWith("ch_")) throw new InvalidInstrumentError(`unknown charge ${request.chargeId}`);
    const refund = { refundId: `re_${randomBytes(8).toString("hex")}` };
    this.#refunds.set(request.idempotencyKey, refund);
    return refund;
  }

  async #work(): Promise<void> {
    const { latencyMs = 0, failureRate = 0, random = Math.random } = this.options;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs)); // simulated processor time
    if (failureRate > 0 && random() < failureRate) throw new GatewayUnavailableError("simulated processor hiccup");
  }
}
