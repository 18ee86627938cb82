/**
 * The topic catalog: every topic of orderflow, its key, size, retention and the value types it may
 * carry, in one declarative list. `orderflow topics apply` makes the broker match it (creating, never
 * deleting); consumers decode against `valueTypes`. Each topic has a `<topic>.dlq` twin.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import {
  AuditRecordedSchema,
  EmailRequestedSchema,
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
  PaymentCompletedSchema,
  PaymentFailedSchema,
  PaymentRefundedSchema,
  PaymentRequestedSchema,
} from "../gen/orderflow/v1/events_pb.ts";
import type { TopicProfile } from "../lib/config.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface TopicSpec {
  readonly name: string;
  readonly kind: "event" | "command" | "dead-letter";
  /** What the record key is. */
  readonly key: "order_id" | "customer_id" | "origin key";
  readonly partitions: number;
  readonly retentionMs: number;
  readonly cleanupPolicy: "delete" | "compact";
  /** Largest record batch the topic accepts (max.message.bytes). */
  readonly maxMessageBytes: number;
  /** Proto messages a record value may be. Empty for a DLQ (it keeps the original bytes). */
  readonly valueTypes: readonly DescMessage[];
  readonly description: string;
}

/** Replication settings by profile: one local broker, or a production cluster. */
export const replication: Readonly<Record<TopicProfile, { replicationFactor: number; minInsyncReplicas: number }>> = {
  local: { replicationFactor: 1, minInsyncReplicas: 1 },
  cluster: { replicationFactor: 3, minInsyncReplicas: 2 },
};

/** Suffix of dead-letter topics. */
export const DLQ_SUFFIX = ".dlq";

/** A saga topic takes records up to 1 MiB; its DLQ twice that, so a dead letter always fits with its error headers. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
export const DLQ_MAX_MESSAGE_BYTES = 2 * MAX_MESSAGE_BYTES + 64 * 1024;

type Base = Omit<TopicSpec, "kind" | "key" | "partitions" | "retentionMs" | "cleanupPolicy" | "maxMessageBytes"> &
  Partial<Pick<TopicSpec, "key" | "partitions" | "retentionMs">>;

function event(spec: Base): TopicSpec {
  return { kind: "event", key: "order_id", partitions: 6, retentionMs: 7 * DAY_MS, cleanupPolicy: "delete", maxMessageBytes: MAX_MESSAGE_BYTES, ...spec };
}

function command(spec: Base): TopicSpec {
  return { ...event(spec), kind: "command" };
}

/** The saga's topics (without their DLQs). */
export const sagaTopics: readonly TopicSpec[] = [
  event({ name: "orders.created", valueTypes: [OrderCreatedSchema], description: "order accepted by the API" }),
  event({ name: "orders.validated", valueTypes: [OrderValidatedSchema], description: "business rules passed" }),
  command({
    name: "orders.cancel.requested",
    valueTypes: [OrderCancelRequestedSchema],
    description: "a customer or operator asked to cancel",
  }),
  event({ name: "orders.completed", valueTypes: [OrderCompletedSchema], description: "paid, stock committed" }),
  event({ name: "orders.failed", valueTypes: [OrderFailedSchema], description: "gave up, compensated" }),
  event({ name: "orders.cancelled", valueTypes: [OrderCancelledSchema], description: "cancelled, compensated" }),
  event({
    name: "orders.audit",
    valueTypes: [AuditRecordedSchema],
    partitions: 3,
    retentionMs: 30 * DAY_MS,
    description: "admin actions",
  }),
  command({
    name: "payments.requested",
    valueTypes: [PaymentRequestedSchema],
    description: "charge, refund or void an order's payment",
  }),
  event({ name: "payments.completed", valueTypes: [PaymentCompletedSchema], description: "charge taken" }),
  event({ name: "payments.failed", valueTypes: [PaymentFailedSchema], description: "charge not taken" }),
  event({ name: "payments.refunded", valueTypes: [PaymentRefundedSchema], description: "charge refunded or voided" }),
  event({ name: "inventory.reserved", valueTypes: [InventoryReservedSchema], description: "all lines held" }),
  event({
    name: "inventory.failed",
    valueTypes: [InventoryReservationFailedSchema],
    description: "nothing held: a SKU was short",
  }),
  command({
    name: "inventory.requested",
    valueTypes: [InventoryActionRequestedSchema],
    description: "release an order's reservation",
  }),
  event({
    name: "inventory.released",
    valueTypes: [InventoryReleasedSchema],
    description: "held stock returned (compensation, cancel or expiry)",
  }),
  event({ name: "inventory.committed", valueTypes: [InventoryCommittedSchema], description: "held stock sold" }),
  command({
    name: "notifications.email",
    valueTypes: [EmailRequestedSchema],
    key: "customer_id",
    partitions: 3,
    description: "send one email",
  }),
  event({ name: "notifications.sent", valueTypes: [NotificationSentSchema], partitions: 3, description: "email sent" }),
];

/**
 * Saga topics no orderflow service consumes: records for people and tools (the admin audit trail,
 * proof of each email sent, each stock commit). Every other saga topic has a consumer, and so a DLQ
 * that its unreadable records go to.
 */
export const unconsumedTopics: ReadonlySet<string> = new Set(["orders.audit", "notifications.sent", "inventory.committed"]);

/** The dead-letter twin of a topic: same partitions, longer retention, original bytes. */
export function deadLetterTopic(spec: TopicSpec): TopicSpec {
  return {
    name: `${spec.name}${DLQ_SUFFIX}`,
    kind: "dead-letter",
    key: "origin key",
    partitions: Math.min(spec.partitions, 3),
    retentionMs: 14 * DAY_MS,
    cleanupPolicy: "delete",
    maxMessageBytes: DLQ_MAX_MESSAGE_BYTES,
    valueTypes: [],
    description: `records of ${spec.name} that could not be handled`,
  };
}

/** Every topic, saga topics first, then their DLQs. */
export const catalog: readonly TopicSpec[] = [...sagaTopics, ...sagaTopics.map(deadLetterTopic)];

/** The catalog entry of a topic; throws for a name not in the catalog. */
export function topicSpec(name: string): TopicSpec {
  const spec = catalog.find((candidate) => candidate.name === name);
  if (spec === undefined) throw new Error(`topic ${name} is not in the catalog`);
  return spec;
}
