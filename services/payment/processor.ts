/**
 * Charges and refunds with at most one charge per order, ever. Each order's outcome is recorded in
 * Redis (payment:{order}); a repeated command returns the record without calling the gateway, so
 * the answer can be published again. Writing happens under a claim (payment:{order}:claim, a random
 * token per holder): the outcome is written by a script only while the writer still holds its claim,
 * so a holder that stalled past its claim cannot overwrite the next one's outcome. The gateway's
 * idempotency key (order + action) covers a crash between its answer and our record: the retry gets
 * the same charge back.
 *
 * Two Redis round trips per command: one script returns the recorded outcome or takes the claim
 * (claim-or-outcome), and after the gateway call one script writes the outcome while the claim is
 * still ours and releases it. A replayed command costs the first alone.
 *
 * A declined card, or a processor that keeps failing after the retries, is recorded as failed and
 * the order fails cleanly. A gateway call that timed out is different — the charge may have gone
 * through — so nothing is recorded and the command is tried again later under the same key; an open
 * circuit breaker likewise delays the order instead of failing it. A refund that finds no charge
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
  /** How long a claim holds; a crashed holder's claim lapses after it. */
  readonly claimMs?: number;
  /** Test-only: false turns off every duplicate check (see the module comment). */
  readonly dedup?: boolean;
}

/**
 * One round trip before the gateway call: the recorded outcome when the order's state is one of
 * ARGV[3..] (the states that answer this action), else the claim (token ARGV[1] for ARGV[2] ms)
 * with the record as it is — or "busy" while another holder has it.
 */
const claimOrOutcomeScript = `
local state = redis.call('HGET', KEYS[1], 'state')
if state then
  for i = 3, #ARGV do
    if ARGV[i] == state then return {'recorded', redis.call('HGETALL', KEYS[1])} end
  end
end
if not redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return {'busy', {}} end
return {'claimed', redis.call('HGETALL', KEYS[1])}`;

/** Writes the outcome fields only while `token` still holds the claim; releases the claim. */
const writeOwnedScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('DEL', KEYS[2])
return 1`;

/** Releases the claim if `token` still holds it (the call failed and nothing is recorded). */
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ProcessorRedis = Redis & {
  paymentClaimOrOutcome(record: string, claim: string, token: string, claimMs: number, ...answeringStates: string[]): Promise<[status: "recorded" | "claimed" | "busy", fields: string[]]>;
  paymentWriteOwned(record: string, claim: string, token: string, ...fields: string[]): Promise<number>;
  paymentRelease(claim: string, token: string): Promise<number>;
};

const masked = (token: string) => `${token.slice(0, 8)}…`;

/** The states of the record that answer a charge command, and those that answer a refund. */
const chargeAnsweredBy = ["charged", "refunded", "failed", "cancelled"];
const refundAnsweredBy = ["refunded", "failed", "cancelled"];

/** A claim this instance holds on one order's payment, with the record as it was when taken. */
interface Claim {
  readonly record: Record<string, string>;
  /** Writes `fields` to the order's record if the claim is still ours, releasing it. */
  readonly write: (fields: Record<string, string | number>) => Promise<void>;
}

export class PaymentProcessor {
  readonly #redis: ProcessorRedis;

  constructor(private readonly deps: ProcessorDeps) {
    deps.redis.defineCommand("paymentClaimOrOutcome", { numberOfKeys: 2, lua: claimOrOutcomeScript });
    deps.redis.defineCommand("paymentWriteOwned", { numberOfKeys: 2, lua: writeOwnedScript });
    deps.redis.defineCommand("paymentRelease", { numberOfKeys: 1, lua: releaseScript });
    this.#redis = deps.redis as ProcessorRedis;
  }

  get #dedup(): boolean {
    return this.deps.dedup ?? true;
  }

  /**
   * Answers from the record when one of `answeredBy` is recorded; otherwise runs `work` holding the
   * order's claim, taken in the same script call. Another holder makes this a retriable error.
   */
  async #recordedOrClaimed<T>(orderId: string, answeredBy: readonly string[], answer: (record: Record<string, string>) => T, work: (claim: Claim) => Promise<T>): Promise<T> {
    const recordKey = this.deps.keys("payment", orderId);
    const claimKey = this.deps.keys("payment", orderId, "claim");
    const token = randomUUID();
    const [status, fields] = await this.#redis.paymentClaimOrOutcome(recordKey, claimKey, token, this.deps.claimMs ?? 30_000, ...answeredBy);
    if (status === "busy") throw new TransientError(`payment of order ${orderId} is being handled by another instance`);
    const record = recordOf(fields);
    if (status === "recorded") return answer(record);
    let written = false;
    const claim: Claim = {
      record,
      write: async (outcome) => {
        const flat = Object.entries(outcome).flatMap(([name, value]) => [name, String(value)]);
        if ((await this.#redis.paymentWriteOwned(recordKey, claimKey, token, ...flat)) !== 1) {
          throw new TransientError(`the claim on order ${orderId}'s payment lapsed before its outcome was written`);
        }
        written = true;
      },
    };
    try {
      return await work(claim);
    } finally {
      if (!written) await this.#redis.paymentRelease(claimKey, token);
    }
  }

  #asCharge(record: Record<string, string>, replayed: boolean): ChargeOutcome {
    if (record["state"] === "charged" || record["state"] === "refunded") {
      return { kind: "charged", paymentId: record["payment_id"] ?? "", processorReference: record["processor_ref"] ?? "", amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed };
    }
    return { kind: "failed", code: (record["code"] ?? "DECLINED") as PaymentFailureCodeName, message: record["message"] ?? "", attempts: Number(record["attempts"] ?? "0"), replayed };
  }

  /** Charges the order once; a repeated call returns the first outcome. */
  async charge(request: { orderId: string; token: string; amountMinor: bigint; currency: string }): Promise<ChargeOutcome> {
    const { orderId } = request;
    if (!this.#dedup) {
      return this.#charge(request, `${orderId}:charge:${randomUUID()}`, (fields) => this.deps.redis.hset(this.deps.keys("payment", orderId), fields).then(() => undefined));
    }
    return this.#recordedOrClaimed(orderId, chargeAnsweredBy, (record) => this.#asCharge(record, true), (claim) => this.#charge(request, `${orderId}:charge`, claim.write));
  }

  /** Calls the gateway under `idempotencyKey` and records the outcome with `write`. */
  async #charge(request: { orderId: string; token: string; amountMinor: bigint; currency: string }, idempotencyKey: string, write: Claim["write"]): Promise<ChargeOutcome> {
    const { orderId } = request;
    let attempts = 0;
    let charge: { chargeId: string; processorReference: string };
    try {
      charge = await this.deps.policy.execute(() => {
        attempts += 1;
        return this.deps.gateway.charge({ idempotencyKey, orderId, token: request.token, amountMinor: request.amountMinor, currency: request.currency });
      });
    } catch (err) {
      if (isUnknownOutcome(err)) throw new TransientError(`the charge of order ${orderId} timed out; its outcome is unknown and it will be retried under the same key`, { cause: err });
      if (err instanceof BreakerOpenError || !(err instanceof PaymentRefusedError || err instanceof TransientError)) throw err;
      const code: PaymentFailureCodeName = err instanceof PaymentRefusedError ? err.code : "PROCESSOR_UNAVAILABLE";
      await write({ state: "failed", code, message: messageOf(err), attempts, amount_minor: request.amountMinor.toString(), currency: request.currency });
      this.deps.log.info({ orderId, code, attempts }, "charge failed");
      return { kind: "failed", code, message: messageOf(err), attempts, replayed: false };
    }
    await write({ state: "charged", payment_id: charge.chargeId, processor_ref: charge.processorReference, amount_minor: request.amountMinor.toString(), currency: request.currency, attempts });
    this.deps.log.info({ orderId, token: masked(request.token), attempts }, "charged");
    return { kind: "charged", paymentId: charge.chargeId, processorReference: charge.processorReference, amountMinor: request.amountMinor, replayed: false };
  }

  /** Refunds the order's charge once; with no charge, refuses any later charge of the order. */
  async refund(request: { orderId: string; amountMinor: bigint; currency: string }): Promise<RefundOutcome> {
    const { orderId } = request;
    const answer = (record: Record<string, string>): RefundOutcome =>
      record["state"] === "refunded"
        ? { kind: "refunded", paymentId: record["payment_id"] ?? "", refundId: record["refund_id"] ?? "", voided: false, amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed: true }
        : { kind: "nothing", reason: `the charge ${record["state"]}` };
    return this.#recordedOrClaimed(orderId, refundAnsweredBy, answer, async ({ record, write }) => {
      if (record["state"] === undefined) {
        await write({ state: "cancelled", code: "CANCELLED", message: "the order was compensated before it was charged", attempts: 0 });
        return { kind: "nothing", reason: "no charge recorded" };
      }
      const paymentId = record["payment_id"] ?? "";
      const amountMinor = BigInt(record["amount_minor"] ?? request.amountMinor.toString());
      const refund = await this.deps.policy.execute(() =>
        this.deps.gateway.refund({ idempotencyKey: `${orderId}:refund`, orderId, chargeId: paymentId, amountMinor, currency: record["currency"] ?? request.currency }),
      ).catch((err: unknown) => {
        throw isUnknownOutcome(err) ? new TransientError(`the refund of order ${orderId} timed out; it will be retried under the same key`, { cause: err }) : err;
      });
      await write({ state: "refunded", refund_id: refund.refundId });
      this.deps.log.info({ orderId }, "refunded");
      return { kind: "refunded", paymentId, refundId: refund.refundId, voided: false, amountMinor, replayed: false };
    });
  }
}

/** A hash as HGETALL's flat reply (name, value, name, value…). */
function recordOf(fields: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] ?? ""] = fields[i + 1] ?? "";
  return record;
}

/** A call that timed out: the processor may or may not have acted on it. */
function isUnknownOutcome(err: unknown): boolean {
  return err instanceof TaskCancelledError;
}
