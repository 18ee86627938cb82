/**
 * Charges and refunds with at most one charge per order, ever. Each order's outcome is recorded in
 * Redis (payment:{order}); a repeated command returns the record without calling the gateway, so
 * the answer can be published again. Writing happens under a claim (payment:{order}:claim, a random
 * token per holder): the outcome is written by a script only while the writer still holds its claim,
 * so a holder that stalled past its claim cannot overwrite the next one's outcome. The gateway's
 * idempotency key (order + action) covers a crash between its answer and our record: the retry gets
 * the same charge back.
 *
 * Lifetime: the record answers every repeated command, so each write sets it to expire
 * `recordLifetimeMs` later (REDIS_DEDUP_TTL_MS, longer than any redelivery of a command); the
 * claim lapses after `claimMs`.
 *
 * A declined card, or a processor that keeps failing after the retries, is recorded as failed and
 * the order fails cleanly — but only once the gateway, asked by the idempotency key, has no charge
 * under it. A gateway call that timed out is different — the charge may have gone through, even if
 * a later retry failed — so nothing is recorded and the command is tried again later under the same
 * key (where the gateway answers with the charge, if it was made); an open circuit breaker likewise
 * delays the order instead of failing it. A refund that finds no charge
 * leaves a tombstone, so a charge command that arrives after its order was compensated is refused.
 *
 * `dedup: false` is a test-only switch for the invariant checker's negative control: every command
 * then charges anew under a fresh idempotency key.
 */
import { randomUUID } from "node:crypto";
import { TaskCancelledError } from "cockatiel";
import { messageOf, TransientError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { PaymentRefusedError, type PaymentFailureCodeName, type PaymentGateway } from "./gateway.ts";
import { BreakerOpenError, type GatewayPolicy } from "./resilience.ts";

export type ChargeOutcome =
  | { readonly kind: "charged"; readonly paymentId: string; readonly processorReference: string; readonly amountMinor: bigint; readonly replayed: boolean }
  | { readonly kind: "failed"; readonly code: PaymentFailureCodeName; readonly message: string; readonly attempts: number; readonly replayed: boolean };

export type RefundOutcome =
  | { readonly kind: "refunded"; readonly paymentId: string; readonly refundId: string; readonly voided: boolean; readonly amountMinor: bigint; readonly replayed: boolean }
  | { readonly kind: "nothing"; readonly reason: string };

export interface ProcessorDeps {
  readonly gateway: PaymentGateway;
  readonly policy: GatewayPolicy;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly log: Logger;
  /** How long the order's record is kept after its last write (REDIS_DEDUP_TTL_MS). */
  readonly recordLifetimeMs: number;
  /** How long a claim holds; a crashed holder's claim lapses after it. */
  readonly claimMs?: number;
  /** Test-only: false turns off every duplicate check (see the module comment). */
  readonly dedup?: boolean;
}

/** Writes the outcome fields only while `token` (ARGV[1]) still holds the claim, keeps them ARGV[2] ms; releases the claim. */
const writeOwnedScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1`;

type ProcessorRedis = Redis & { paymentWriteOwned(record: string, claim: string, token: string, lifetimeMs: number, ...fields: string[]): Promise<number> };

const masked = (token: string) => `${token.slice(0, 8)}…`;

/** A claim this instance holds on one order's payment. */
interface Claim {
  /** Writes `fields` to the order's record if the claim is still ours. */
  write(fields: Record<string, string | number>): Promise<void>;
}

export class PaymentProcessor {
  readonly #redis: ProcessorRedis;

  constructor(private readonly deps: ProcessorDeps) {
    deps.redis.defineCommand("paymentWriteOwned", { numberOfKeys: 2, lua: writeOwnedScript });
    this.#redis = deps.redis as ProcessorRedis;
  }

  get #dedup(): boolean {
    return this.deps.dedup ?? true;
  }

  #record(orderId: string): Promise<Record<string, string>> {
    return this.deps.redis.hgetall(this.deps.keys("payment", orderId));
  }

  /** Runs `work` holding the order's claim; another holder makes this a retriable error. */
  async #claimed<T>(orderId: string, work: (claim: Claim) => Promise<T>): Promise<T> {
    const claimKey = this.deps.keys("payment", orderId, "claim");
    const token = randomUUID();
    if ((await this.deps.redis.set(claimKey, token, "PX", this.deps.claimMs ?? 30_000, "NX")) !== "OK") {
      throw new TransientError(`payment of order ${orderId} is being handled by another instance`);
    }
    let written = false;
    const claim: Claim = {
      write: async (fields) => {
        const flat = Object.entries(fields).flatMap(([name, value]) => [name, String(value)]);
        if ((await this.#redis.paymentWriteOwned(this.deps.keys("payment", orderId), claimKey, token, this.deps.recordLifetimeMs, ...flat)) !== 1) {
          throw new TransientError(`the claim on order ${orderId}'s payment lapsed before its outcome was written`);
        }
        written = true;
      },
    };
    try {
      return await work(claim);
    } finally {
      if (!written) await this.#redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, claimKey, token);
    }
  }

  /** Test-only path without dedup (no claim): the same record and lifetime, unguarded. */
  async #writeUnclaimed(orderId: string, fields: Record<string, string | number>): Promise<void> {
    const record = this.deps.keys("payment", orderId);
    await this.deps.redis.multi().hset(record, fields).pexpire(record, this.deps.recordLifetimeMs).exec();
  }

  #asCharge(record: Record<string, string>, replayed: boolean): ChargeOutcome | undefined {
    if (record["state"] === "charged" || record["state"] === "refunded") {
      return { kind: "charged", paymentId: record["payment_id"] ?? "", processorReference: record["processor_ref"] ?? "", amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed };
    }
    if (record["state"] === "failed" || record["state"] === "cancelled") {
      return { kind: "failed", code: (record["code"] ?? "DECLINED") as PaymentFailureCodeName, message: record["message"] ?? "", attempts: Number(record["attempts"] ?? "0"), replayed };
    }
    return undefined;
  }

  /** Charges the order once; a repeated call returns the first outcome. */
  async charge(request: { orderId: string; token: string; amountMinor: bigint; currency: string }): Promise<ChargeOutcome> {
    const { orderId } = request;
    if (this.#dedup) {
      const earlier = this.#asCharge(await this.#record(orderId), true);
      if (earlier !== undefined) return earlier;
    }
    const work = async (claim: Claim | undefined) => {
      if (this.#dedup) {
        const raced = this.#asCharge(await this.#record(orderId), true);
        if (raced !== undefined) return raced;
      }
      const idempotencyKey = this.#dedup ? `${orderId}:charge` : `${orderId}:charge:${randomUUID()}`;
      const write = (fields: Record<string, string | number>) => (claim === undefined ? this.#writeUnclaimed(orderId, fields) : claim.write(fields));
      const recordCharged = async (charge: { chargeId: string; processorReference: string }) => {
        await write({ state: "charged", payment_id: charge.chargeId, processor_ref: charge.processorReference, amount_minor: request.amountMinor.toString(), currency: request.currency, attempts });
        this.deps.log.info({ orderId, token: masked(request.token), attempts }, "charged");
        return { kind: "charged", paymentId: charge.chargeId, processorReference: charge.processorReference, amountMinor: request.amountMinor, replayed: false } as const;
      };
      let attempts = 0;
      /** An attempt timed out: it may still charge, whatever the later attempts answered. */
      let unknownOutcome = false;
      let charge: { chargeId: string; processorReference: string };
      try {
        charge = await this.deps.policy.execute(({ signal }) => {
          attempts += 1;
          // The policy aborts an attempt's signal when it times out (and also once it is over).
          let pending = true;
          signal.addEventListener("abort", () => (unknownOutcome ||= pending), { once: true });
          return this.deps.gateway.charge({ idempotencyKey, orderId, token: request.token, amountMinor: request.amountMinor, currency: request.currency }).finally(() => (pending = false));
        });
      } catch (err) {
        if (unknownOutcome || isUnknownOutcome(err)) throw new TransientError(`a call to charge order ${orderId} timed out; its outcome is unknown and it will be retried under the same key`, { cause: err });
        if (err instanceof BreakerOpenError || !(err instanceof PaymentRefusedError || err instanceof TransientError)) throw err;
        // A call of an earlier round that timed out may have charged after all: the gateway decides.
        const booked = await this.deps.gateway.lookup(idempotencyKey).catch((lookupError: unknown) => {
          throw new TransientError(`the charge of order ${orderId} failed and the gateway cannot say whether an earlier call charged: ${messageOf(lookupError)}`, { cause: lookupError });
        });
        if (booked !== undefined) return recordCharged(booked);
        const code: PaymentFailureCodeName = err instanceof PaymentRefusedError ? err.code : "PROCESSOR_UNAVAILABLE";
        await write({ state: "failed", code, message: messageOf(err), attempts, amount_minor: request.amountMinor.toString(), currency: request.currency });
        this.deps.log.info({ orderId, code, attempts }, "charge failed");
        return { kind: "failed", code, message: messageOf(err), attempts, replayed: false } as const;
      }
      return recordCharged(charge);
    };
    return this.#dedup ? this.#claimed(orderId, work) : work(undefined);
  }

  /** Refunds the order's charge once; with no charge, refuses any later charge of the order. */
  async refund(request: { orderId: string; amountMinor: bigint; currency: string }): Promise<RefundOutcome> {
    const { orderId } = request;
    const asRefund = (record: Record<string, string>, replayed: boolean): RefundOutcome | undefined =>
      record["state"] === "refunded"
        ? { kind: "refunded", paymentId: record["payment_id"] ?? "", refundId: record["refund_id"] ?? "", voided: false, amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed }
        : record["state"] === "charged" || record["state"] === undefined
          ? undefined
          : { kind: "nothing", reason: `the charge ${record["state"]}` };
    const earlier = asRefund(await this.#record(orderId), true);
    if (earlier !== undefined) return earlier;
    return this.#claimed(orderId, async (claim) => {
      const record = await this.#record(orderId);
      const raced = asRefund(record, true);
      if (raced !== undefined) return raced;
      if (record["state"] === undefined) {
        await claim.write({ state: "cancelled", code: "CANCELLED", message: "the order was compensated before it was charged", attempts: 0 });
        return { kind: "nothing", reason: "no charge recorded" };
      }
      const paymentId = record["payment_id"] ?? "";
      const amountMinor = BigInt(record["amount_minor"] ?? request.amountMinor.toString());
      const refund = await this.deps.policy.execute(() =>
        this.deps.gateway.refund({ idempotencyKey: `${orderId}:refund`, orderId, chargeId: paymentId, amountMinor, currency: record["currency"] ?? request.currency }),
      ).catch((err: unknown) => {
        throw isUnknownOutcome(err) ? new TransientError(`the refund of order ${orderId} timed out; it will be retried under the same key`, { cause: err }) : err;
      });
      await claim.write({ state: "refunded", refund_id: refund.refundId });
      this.deps.log.info({ orderId }, "refunded");
      return { kind: "refunded", paymentId, refundId: refund.refundId, voided: false, amountMinor, replayed: false };
    });
  }
}

/** A call that timed out: the processor may or may not have acted on it. */
function isUnknownOutcome(err: unknown): boolean {
  return err instanceof TaskCancelledError;
}
