/**
 * The payment service's Kafka shell over the processor: a charge command becomes
 * payments.completed or payments.failed, a refund or void becomes payments.refunded. The processor
 * records every outcome by order id, so a redelivered command answers the same again without a
 * second call to the gateway.
 */
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  PaymentAction,
  PaymentCompletedSchema,
  PaymentFailedSchema,
  PaymentFailureCode,
  PaymentRefundedSchema,
  type PaymentRequested,
} from "../../gen/orderflow/v1/events_pb.ts";
import { RejectedError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Sink } from "../../lib/kafka/publisher.ts";
import type { PaymentProcessor } from "./processor.ts";

export interface PaymentDeps {
  readonly processor: PaymentProcessor;
  readonly log: Logger;
}

export function createPaymentHandler(deps: PaymentDeps) {
  const { processor, log } = deps;

  /** Handles one command; its answer goes to `out` (the consumer's transaction). */
  return async function handle(command: PaymentRequested, out: Sink): Promise<void> {
    const { orderId } = command;
    const currency = command.amount?.currencyCode ?? "";
    const amountMinor = command.amount?.amountMinor ?? 0n;
    if (command.action === PaymentAction.CHARGE) {
      if (command.instrument === undefined) throw new RejectedError("a charge needs a payment instrument");
      const outcome = await processor.charge({ orderId, token: command.instrument.token, amountMinor, currency });
      if (outcome.kind === "charged") {
        await out.publish("payments.completed", PaymentCompletedSchema, {
          orderId,
          paymentId: outcome.paymentId,
          amount: { currencyCode: currency, amountMinor: outcome.amountMinor },
          processorReference: outcome.processorReference,
          completedAt: timestampNow(),
        }, { orderId });
      } else {
        await out.publish("payments.failed", PaymentFailedSchema, {
          orderId,
          code: PaymentFailureCode[outcome.code],
          message: outcome.message,
          attempts: outcome.attempts,
          failedAt: timestampNow(),
        }, { orderId });
      }
      return;
    }
    const outcome = await processor.refund({ orderId, amountMinor, currency });
    if (outcome.kind === "refunded") {
      await out.publish("payments.refunded", PaymentRefundedSchema, {
        orderId,
        paymentId: outcome.paymentId,
        refundId: outcome.refundId,
        amount: { currencyCode: currency, amountMinor: outcome.amountMinor },
        voided: outcome.voided,
        refundedAt: timestampNow(),
      }, { orderId });
    } else {
      log.warn({ orderId, reason: outcome.reason }, "nothing to refund");
    }
  };
}
