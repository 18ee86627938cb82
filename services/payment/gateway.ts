/**
 * The payment gateway port: what orderflow needs from a card processor, and the errors it can
 * answer with. A real provider plugs in by implementing PaymentGateway; SimulatedGateway is the one
 * used locally and in tests. Declines are final; unavailability is worth retrying.
 */
import { OrderflowError, TransientError } from "../../lib/errors.ts";

export interface PaymentGateway {
  /** Exchanges a card number for an opaque token; the number goes no further. */
  tokenize(cardNumber: string): Promise<{ token: string; last4: string; brand: string }>;
  /** Charges a token. The same idempotency key always means the same single charge. `orderId` is metadata for the processor's books. */
  charge(request: { idempotencyKey: string; orderId: string; token: string; amountMinor: bigint; currency: string }): Promise<{ chargeId: string; processorReference: string }>;
  /**
   * The charge booked under an idempotency key, if any: how a charge whose call timed out (it may
   * have gone through) is resolved before it is ever reported as failed.
   */
  lookup(idempotencyKey: string): Promise<{ chargeId: string; processorReference: string } | undefined>;
  /** Refunds a charge, once per idempotency key. */
  refund(request: { idempotencyKey: string; orderId: string; chargeId: string; amountMinor: bigint; currency: string }): Promise<{ refundId: string }>;
}

/** Failure codes as payments.failed reports them. */
export type PaymentFailureCodeName = "DECLINED" | "INSUFFICIENT_FUNDS" | "INVALID_INSTRUMENT" | "PROCESSOR_UNAVAILABLE" | "CANCELLED";

/** The processor said no; asking again gives the same answer. */
export abstract class PaymentRefusedError extends OrderflowError {
  readonly retriable = false;
  abstract readonly code: PaymentFailureCodeName;
}

export class CardDeclinedError extends PaymentRefusedError {
  override readonly name = "CardDeclinedError";
  readonly code = "DECLINED";
  readonly errorClass = "payment.declined";
}

export class InsufficientFundsError extends PaymentRefusedError {
  override readonly name = "InsufficientFundsError";
  readonly code = "INSUFFICIENT_FUNDS";
  readonly errorClass = "payment.insufficient-funds";
}

export class InvalidInstrumentError extends PaymentRefusedError {
  override readonly name = "InvalidInstrumentError";
  readonly code = "INVALID_INSTRUMENT";
  readonly errorClass = "payment.invalid-instrument";
}

/** The processor could not be reached or failed inside; worth retrying. */
export class GatewayUnavailableError extends TransientError {
  override readonly name = "GatewayUnavailableError";
}
