/**
 * A simulated card processor with Stripe-style test cards: 4242424242424242 succeeds,
 * 4000000000000002 is declined, 4000000000009995 has insufficient funds, 4000000000000119 fails
 * transiently every time, any other Luhn-valid number succeeds. A simulation property: the
 * behaviour is written into the token (tok_ok_…, tok_declined_…), so any instance, also after a
 * restart, treats a token the same way. Latency and a random transient failure rate are settable
 * for load tests.
 *
 * Like a real processor, it keeps its own books: every charge and refund is written once per
 * idempotency key, together with the key, in one step (GatewayLedger). With the Redis ledger the
 * books outlive our processes — a payment instance killed between the processor's answer and its
 * own record gets the same charge back on retry — and the invariant checker can audit the money
 * actually taken, not just what our topics say.
 */
import { randomBytes } from "node:crypto";
import { DEFAULT_DEDUP_LIFETIME_MS } from "../../lib/lifetimes.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { CardDeclinedError, GatewayUnavailableError, InsufficientFundsError, InvalidInstrumentError, type PaymentGateway } from "./gateway.ts";

/** One movement of money as the processor booked it. */
export interface LedgerEntry {
  readonly kind: "charge" | "refund";
  /** ch_… or re_… */
  readonly id: string;
  readonly orderId: string;
  /** For a refund: the charge it returns. */
  readonly chargeId?: string;
  readonly amountMinor: string;
}

/** The processor's books: one entry per idempotency key, written with the key in one step. */
export interface GatewayLedger {
  /** The entry booked under `idempotencyKey`, booking `entry` first if there is none. */
  book(idempotencyKey: string, entry: LedgerEntry): Promise<LedgerEntry>;
  earlier(idempotencyKey: string): Promise<LedgerEntry | undefined>;
  entries(): Promise<LedgerEntry[]>;
}

/** Books kept in memory: enough for tokenizing and unit tests, gone with the process. */
export class MemoryLedger implements GatewayLedger {
  readonly #byKey = new Map<string, LedgerEntry>();

  book(idempotencyKey: string, entry: LedgerEntry): Promise<LedgerEntry> {
    const earlier = this.#byKey.get(idempotencyKey);
    if (earlier !== undefined) return Promise.resolve(earlier);
    this.#byKey.set(idempotencyKey, entry);
    return Promise.resolve(entry);
  }

  earlier(idempotencyKey: string): Promise<LedgerEntry | undefined> {
    return Promise.resolve(this.#byKey.get(idempotencyKey));
  }

  entries(): Promise<LedgerEntry[]> {
    return Promise.resolve([...this.#byKey.values()]);
  }
}

/**
 * KEYS: the key's entry, the books (a sorted set by booking time). ARGV: the entry, how long it is
 * kept (ms), now (ms). Books an entry once per key; entries older than their lifetime leave the books.
 */
const bookScript = `
local earlier = redis.call('GET', KEYS[1])
if earlier then return earlier end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return ARGV[1]`;

type LedgerRedis = Redis & { gatewayBook(entry: string, books: string, value: string, lifetimeMs: number, nowMs: number): Promise<string> };

/**
 * Books in Redis: gateway:key:{idempotency key} (the entry booked under it) and gateway:entries
 * (every entry, by booking time). Shared by every payment instance and kept across restarts for
 * `lifetimeMs` (REDIS_DEDUP_TTL_MS) after booking: an idempotency key is retried only while the
 * command that uses it can be delivered, which is shorter. A reader of the books (the checker) may
 * leave the lifetime at its default: it books nothing.
 */
export class RedisLedger implements GatewayLedger {
  readonly #redis: LedgerRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly lifetimeMs: number = DEFAULT_DEDUP_LIFETIME_MS,
    private readonly now: () => number = Date.now,
  ) {
    redis.defineCommand("gatewayBook", { numberOfKeys: 2, lua: bookScript });
    this.#redis = redis as LedgerRedis;
  }

  async book(idempotencyKey: string, entry: LedgerEntry): Promise<LedgerEntry> {
    return JSON.parse(await this.#redis.gatewayBook(this.keys("gateway", "key", idempotencyKey), this.keys("gateway", "entries"), JSON.stringify(entry), this.lifetimeMs, this.now())) as LedgerEntry;
  }

  async earlier(idempotencyKey: string): Promise<LedgerEntry | undefined> {
    const raw = await this.#redis.get(this.keys("gateway", "key", idempotencyKey));
    return raw === null ? undefined : (JSON.parse(raw) as LedgerEntry);
  }

  async entries(): Promise<LedgerEntry[]> {
    return (await this.#redis.zrange(this.keys("gateway", "entries"), 0, -1)).map((raw) => JSON.parse(raw) as LedgerEntry);
  }
}

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
  /** Where the processor keeps its books; in memory unless given. */
  readonly ledger?: GatewayLedger;
}

export class SimulatedGateway implements PaymentGateway {
  readonly #ledger: GatewayLedger;
  /** Calls made, for tests. */
  readonly calls = { charge: 0, refund: 0 };

  constructor(private readonly options: SimulatedGatewayOptions = {}) {
    this.#ledger = options.ledger ?? new MemoryLedger();
  }

  tokenize(cardNumber: string): Promise<{ token: string; last4: string; brand: string }> {
    const digits = cardNumber.replace(/[\s-]/g, "");
    if (!luhnValid(digits)) return Promise.reject(new InvalidInstrumentError("card number is not valid"));
    const behaviour = testCards[digits] ?? "ok";
    return Promise.resolve({ token: `tok_${behaviour}_${randomBytes(8).toString("hex")}`, last4: digits.slice(-4), brand: digits.startsWith("4") ? "visa" : "card" });
  }

  async charge(request: { idempotencyKey: string; orderId: string; token: string; amountMinor: bigint; currency: string }) {
    this.calls.charge += 1;
    const earlier = await this.#ledger.earlier(request.idempotencyKey);
    if (earlier === undefined) {
      await this.#work();
      const behaviour = /^tok_(ok|declined|nofunds|flaky)_[0-9a-f]+$/.exec(request.token)?.[1] as Behaviour | undefined;
      if (behaviour === undefined) throw new InvalidInstrumentError("unknown token");
      if (behaviour === "declined") throw new CardDeclinedError("card declined");
      if (behaviour === "nofunds") throw new InsufficientFundsError("insufficient funds");
      if (behaviour === "flaky") throw new GatewayUnavailableError("processor error, try again");
    }
    const booked = earlier ?? (await this.#ledger.book(request.idempotencyKey, { kind: "charge", id: `ch_${randomBytes(8).toString("hex")}`, orderId: request.orderId, amountMinor: request.amountMinor.toString() }));
    return { chargeId: booked.id, processorReference: `sim_${booked.id.slice(3)}` };
  }

  async lookup(idempotencyKey: string) {
    const booked = await this.#ledger.earlier(idempotencyKey);
    return booked?.kind === "charge" ? { chargeId: booked.id, processorReference: `sim_${booked.id.slice(3)}` } : undefined;
  }

  async refund(request: { idempotencyKey: string; orderId: string; chargeId: string; amountMinor: bigint; currency: string }) {
    this.calls.refund += 1;
    const earlier = await this.#ledger.earlier(request.idempotencyKey);
    if (earlier === undefined) {
      await this.#work();
      if (!request.chargeId.startsWith("ch_")) throw new InvalidInstrumentError(`unknown charge ${request.chargeId}`);
    }
    const booked = earlier ?? (await this.#ledger.book(request.idempotencyKey, { kind: "refund", id: `re_${randomBytes(8).toString("hex")}`, orderId: request.orderId, chargeId: request.chargeId, amountMinor: request.amountMinor.toString() }));
    return { refundId: booked.id };
  }

  async #work(): Promise<void> {
    const { latencyMs = 0, failureRate = 0, random = Math.random } = this.options;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs)); // simulated processor time
    if (failureRate > 0 && random() < failureRate) throw new GatewayUnavailableError("simulated processor hiccup");
  }
}
