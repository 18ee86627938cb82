/**
 * Charges and refunds with at most one charge per order, ever. Each order's outcome is recorded in
 * Redis (payment:{order}); a repeated command returns the record without calling the gateway. A
 * short claim (payment:{order}:claim, SET NX) keeps two instances from calling at once, and the
 * gateway's own idempotency key (order + action) covers a crash between its answer and our record.
 *
 * When the processor keeps failing transiently past the retries, the outcome is recorded as failed
 * (PROCESSOR_UNAVAILABLE) and the order fails cleanly — the behaviour DESIGN asks of the flaky test
 * card. An open circuit breaker is different: nothing is recorded and the error is retriable, so the
 * command is delivered again later and the order is delayed, not failed.
 */
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
}

const masked = (token: string) => `${token.slice(0, 8)}…`;

export class PaymentProcessor {
  constructor(private readonly deps: ProcessorDeps) {}

  #record(orderId: string): Promise<Record<string, string>> {
    return this.deps.redis.hgetall(this.deps.keys("payment", orderId));
  }

  async #claimed<T>(orderId: string, action: string, work: () => Promise<T>): Promise<T> {
    const claim = this.deps.keys("payment", orderId, "claim");
    if ((await this.deps.redis.set(claim, action, "PX", this.deps.claimMs ?? 30_000, "NX")) !== "OK") {
      throw new TransientError(`payment of order ${orderId} is being handled by another instance`);
    }
    try {
      return await work();
    } finally {
      await this.deps.redis.del(claim);
    }
  }

  #asCharge(record: Record<string, string>, replayed: boolean): ChargeOutcome | undefined {
    if (record["state"] === "charged" || record["state"] === "refunded") {
      return { kind: "charged", paymentId: record["payment_id"] ?? "", processorReference: record["processor_ref"] ?? "", amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed };
    }
    if (record["state"] === "failed") {
      return { kind: "failed", code: (record["code"] ?? "DECLINED") as PaymentFailureCodeName, message: record["message"] ?? "", attempts: Number(record["attempts"] ?? "0"), replayed };
    }
    return undefined;
  }

  /** Charges the order once; a repeated call returns the first outcome. */
  async charge(request: { orderId: string; token: string; amountMinor: bigint; currency: string }): Promise<ChargeOutcome> {
    const { orderId } = request;
    const earlier = this.#asCharge(await this.#record(orderId), true);
    if (earlier !== undefined) return earlier;
    return this.#claimed(orderId, "charge", async () => {
      const raced = this.#asCharge(await this.#record(orderId), true);
      if (raced !== undefined) return raced;
      const key = this.deps.keys("payment", orderId);
      let attempts = 0;
      try {
        const charge = await this.deps.policy.execute(() => {
          attempts += 1;
          return this.deps.gateway.charge({ idempotencyKey: `${orderId}:charge`, token: request.token, amountMinor: request.amountMinor, currency: request.currency });
        });
        await this.deps.redis.hset(key, {
          state: "charged",
          payment_id: charge.chargeId,
          processor_ref: charge.processorReference,
          amount_minor: request.amountMinor.toString(),
          currency: request.currency,
          attempts,
        });
        this.deps.log.info({ orderId, token: masked(request.token), attempts }, "charged");
        return { kind: "charged", paymentId: charge.chargeId, processorReference: charge.processorReference, amountMinor: request.amountMinor, replayed: false };
      } catch (err) {
        if (err instanceof BreakerOpenError) throw err;
        const code: PaymentFailureCodeName = err instanceof PaymentRefusedError ? err.code : "PROCESSOR_UNAVAILABLE";
        await this.deps.redis.hset(key, { state: "failed", code, message: messageOf(err), attempts, amount_minor: request.amountMinor.toString(), currency: request.currency });
        this.deps.log.info({ orderId, code, attempts }, "charge failed");
        return { kind: "failed", code, message: messageOf(err), attempts, replayed: false };
      }
    });
  }

  /** Refunds the order's charge once; nothing when there is no charge. */
  async refund(request: { orderId: string; amountMinor: bigint; currency: string }): Promise<RefundOutcome> {
    const { orderId } = request;
    const asRefund = (record: Record<string, string>, replayed: boolean): RefundOutcome | undefined =>
      record["state"] === "refunded"
        ? { kind: "refunded", paymentId: record["payment_id"] ?? "", refundId: record["refund_id"] ?? "", voided: false, amountMinor: BigInt(record["amount_minor"] ?? "0"), replayed }
        : record["state"] === "charged"
          ? undefined
          : { kind: "nothing", reason: record["state"] === undefined ? "no charge recorded" : `the charge ${record["state"]}` };
    const earlier = asRefund(await this.#record(orderId), true);
    if (earlier !== undefined) return earlier;
    return this.#claimed(orderId, "refund", async () => {
      const record = await this.#record(orderId);
      const raced = asRefund(record, true);
      if (raced !== undefined) return raced;
      const paymentId = record["payment_id"] ?? "";
      const amountMinor = BigInt(record["amount_minor"] ?? request.amountMinor.toString());
      const refund = await this.deps.policy.execute(() =>
        this.deps.gateway.refund({ idempotencyKey: `${orderId}:refund`, chargeId: paymentId, amountMinor, currency: record["currency"] ?? request.currency }),
      );
      await this.deps.redis.hset(this.deps.keys("payment", orderId), { state: "refunded", refund_id: refund.refundId });
      this.deps.log.info({ orderId }, "refunded");
      return { kind: "refunded", paymentId, refundId: refund.refundId, voided: false, amountMinor, replayed: false };
    });
  }
}
