/**
 * The fault "dlq-refuses-writes": the DLQs of a few consumed topics refuse every write for a while
 * (their max.message.bytes lowered below any dead letter, yet above a transaction marker, so that
 * aborts still complete), while poison records arrive on those topics. Nothing may be lost and
 * nothing may stall but those records: the other orders go on, and once the DLQs take writes
 * again every poison record lands in its DLQ (the suite checks it like the poison fault's).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { DLQ_MAX_MESSAGE_BYTES, DLQ_SUFFIX, topicSpec } from "../../infra/topics.ts";
import { SCHEMA_VERSION, envelopeHeaders, newEventId } from "../../lib/codec/envelope.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { alterTopicConfigs } from "../harness/topic-config.ts";
import type { Fault } from "./faults.ts";

/** Read by the orchestrator and payment in transactions, and by the order projection (at-least-once). */
const REFUSING = ["orders.created", "payments.requested", "orders.completed"] as const;
const POISON_PER_TOPIC = 3;
/** A dead letter carries its record and a dozen headers; a transaction marker takes about 80 bytes. */
const REFUSING_MAX_MESSAGE_BYTES = "128";
const HOLD_MS = 20_000;

export const dlqRefusal: Fault = {
  name: "dlq-refuses-writes",
  description: `the DLQs of ${REFUSING.join(", ")} refuse every write for ${HOLD_MS / 1000} s while poison records arrive on those topics; then they take writes again`,
  async run(ctx) {
    const dlqs = REFUSING.map((base) => `${topicName(ctx.config, base)}${DLQ_SUFFIX}`);
    await alterTopicConfigs(ctx.env.brokers, dlqs, { add: { "max.message.bytes": REFUSING_MAX_MESSAGE_BYTES } });
    ctx.note("DLQs refuse writes", { topics: dlqs });
    try {
      for (const base of REFUSING) {
        const topic = topicName(ctx.config, base);
        const typeName = topicSpec(base).valueTypes[0]?.typeName ?? "";
        for (let i = 0; i < POISON_PER_TOPIC; i += 1) {
          const key = `poison-dlq-refused-${randomUUID()}`;
          ctx.poison.set(key, topic);
          const headers = envelopeHeaders({ eventId: newEventId(), eventType: typeName, contentType: "application/x-protobuf", schemaVersion: SCHEMA_VERSION, orderId: randomUUID(), producer: "chaos", occurredAt: new Date() });
          await ctx.publisher.send(topic, { key, value: randomBytes(64), headers });
        }
      }
      ctx.note("poison sent to the refusing topics", { perTopic: POISON_PER_TOPIC });
      // The fault in place (the injection, not a synchronisation).
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    } finally {
      await alterTopicConfigs(ctx.env.brokers, dlqs, { add: { "max.message.bytes": String(DLQ_MAX_MESSAGE_BYTES) } });
      ctx.note("DLQs take writes again");
    }
  },
};
