/**
 * A valid sample of every event and command in the catalog, for round-trip and contract tests.
 * A new message type without a sample fails the catalog test.
 */
import { randomUUID } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { FailureReason, OrderStatus, PaymentMethod } from "../../gen/orderflow/v1/common_pb.ts";
import {
  AuditRecordedSchema,
  EmailRequestedSchema,
  EmailTemplate,
  InventoryAction,
  InventoryActionRequestedSchema,
  InventoryCommittedSchema,
  InventoryReleasedSchema,
  InventoryReservationFailedSchema,
  InventoryReservedSchema,
  NotificationSentSchema,
  OrderCancelRequestedSchema,
  OrderCancelledSchema,
  OrderCompletedSchema,
  OrderCreatedSchema,
  OrderFailedSchema,
  OrderValidatedSchema,
  PaymentAction,
  PaymentCompletedSchema,
  PaymentFailedSchema,
  PaymentFailureCode,
  PaymentRefundedSchema,
  PaymentRequestedSchema,
  ReleaseReason,
} from "../../gen/orderflow/v1/events_pb.ts";

const usd = (amountMinor: bigint) => ({ currencyCode: "USD", amountMinor });
const lines = [
  { productId: "laptop", quantity: 1, unitPrice: usd(99999n) },
  { productId: "mouse", quantity: 2, unitPrice: usd(2500n) },
];
const reserved = [
  { productId: "laptop", quantity: 1 },
  { productId: "mouse", quantity: 2 },
];

type Sample = (orderId: string) => MessageInitShape<DescMessage>;

const samples: ReadonlyMap<string, Sample> = new Map<string, Sample>([
  [OrderCreatedSchema.typeName, (orderId) => ({
    orderId,
    customerId: "c-1",
    customerEmail: "ada@example.com",
    items: lines,
    total: usd(104999n),
    payment: { method: PaymentMethod.CARD, token: "tok_4242", cardLast4: "4242" },
    shippingAddress: { name: "Ada", line1: "1 Loop Rd", city: "London", postalCode: "N1", countryCode: "GB" },
    idempotencyKey: "key-1",
    createdAt: timestampNow(),
  })],
  [OrderValidatedSchema.typeName, (orderId) => ({ orderId, customerId: "c-1", items: lines, total: usd(104999n), validatedAt: timestampNow() })],
  [OrderCancelRequestedSchema.typeName, (orderId) => ({ orderId, requestedBy: "customer:c-1", reason: "changed my mind", requestedAt: timestampNow() })],
  [OrderCompletedSchema.typeName, (orderId) => ({ orderId, customerId: "c-1", total: usd(104999n), paymentId: "pay-1", reservationId: "res-1", completedAt: timestampNow() })],
  [OrderFailedSchema.typeName, (orderId) => ({ orderId, customerId: "c-1", reason: FailureReason.PAYMENT, detail: "declined", refunded: false, failedAt: timestampNow() })],
  [OrderCancelledSchema.typeName, (orderId) => ({ orderId, customerId: "c-1", reason: "customer", refunded: true, cancelledAt: timestampNow() })],
  [PaymentRequestedSchema.typeName, (orderId) => ({
    orderId,
    action: PaymentAction.CHARGE,
    amount: usd(104999n),
    instrument: { method: PaymentMethod.CARD, token: "tok_4242", cardLast4: "4242" },
    customerId: "c-1",
    requestedAt: timestampNow(),
  })],
  [PaymentCompletedSchema.typeName, (orderId) => ({ orderId, paymentId: "pay-1", amount: usd(104999n), processorReference: "ch_1", completedAt: timestampNow() })],
  [PaymentFailedSchema.typeName, (orderId) => ({ orderId, code: PaymentFailureCode.DECLINED, message: "card declined", attempts: 1, failedAt: timestampNow() })],
  [PaymentRefundedSchema.typeName, (orderId) => ({ orderId, paymentId: "pay-1", refundId: "re-1", amount: usd(104999n), voided: false, refundedAt: timestampNow() })],
  // Held for ten minutes, as RESERVATION_TTL_MS makes it by default: a sample reservation is live.
  [InventoryReservedSchema.typeName, (orderId) => ({ orderId, reservationId: "res-1", lines: reserved, expiresAt: timestampFromMs(Date.now() + 10 * 60_000), reservedAt: timestampNow() })],
  [InventoryReservationFailedSchema.typeName, (orderId) => ({ orderId, shortages: [{ productId: "laptop", requested: 3, available: 1 }], failedAt: timestampNow() })],
  [InventoryActionRequestedSchema.typeName, (orderId) => ({ orderId, action: InventoryAction.RELEASE, reason: ReleaseReason.COMPENSATION, requestedAt: timestampNow() })],
  [InventoryReleasedSchema.typeName, (orderId) => ({ orderId, reservationId: "res-1", reason: ReleaseReason.EXPIRED, lines: reserved, releasedAt: timestampNow() })],
  [InventoryCommittedSchema.typeName, (orderId) => ({ orderId, reservationId: "res-1", lines: reserved, committedAt: timestampNow() })],
  [EmailRequestedSchema.typeName, (orderId) => ({
    notificationId: `${orderId}:confirmed`,
    orderId,
    customerId: "c-1",
    email: "ada@example.com",
    template: EmailTemplate.ORDER_CONFIRMED,
    params: { total: "1049.99 USD" },
    requestedAt: timestampNow(),
  })],
  [NotificationSentSchema.typeName, (orderId) => ({ notificationId: `${orderId}:confirmed`, orderId, template: EmailTemplate.ORDER_CONFIRMED, messageId: "<m1@orderflow>", sentAt: timestampNow() })],
  [AuditRecordedSchema.typeName, (orderId) => ({
    auditId: randomUUID(),
    orderId,
    actor: "service:orchestrator",
    action: "status_changed",
    fromStatus: OrderStatus.PENDING,
    toStatus: OrderStatus.VALIDATED,
    occurredAt: timestampNow(),
  })],
]);

/** A valid init of `schema` for `orderId`; throws when the type has no sample yet. */
export function sampleOf<Desc extends DescMessage>(schema: Desc, orderId: string = randomUUID()): MessageInitShape<Desc> {
  const sample = samples.get(schema.typeName);
  if (sample === undefined) throw new Error(`no sample for ${schema.typeName}`);
  return sample(orderId) as MessageInitShape<Desc>;
}
