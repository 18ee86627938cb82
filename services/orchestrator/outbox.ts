/**
 * The orchestrator's outbox format. A decided record is validated once, when the decision becomes
 * outbox entries, and kept as its encoded bytes with what its envelope needs; carrying it out sends
 * those bytes as they are under the entry's own event id (no decode, no re-encode, no second
 * validation). A decision with an invalid message is refused here, before anything is stored.
 */
import { create, toBinary, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { assertValid, contentTypes, type Encoding, type OutgoingRecord } from "../../lib/codec/codec.ts";
import { SCHEMA_VERSION, envelopeHeaders, newEventId } from "../../lib/codec/envelope.ts";
import { RejectedError, messageOf } from "../../lib/errors.ts";
import { sagaOutcomeOf, type SagaOutcome } from "./observability.ts";
import type { Compensation, Effect, Publish, SagaState } from "./saga.ts";

/**
 * A decided effect waiting to be carried out. `id` is a UUIDv7 (the decision time is in it) and is
 * the published record's event id, across every retry. `cause` is the event id of the consumed
 * record that decided it (absent for the timer's decisions), so a redelivery re-sends its own
 * entries only. `outcome` is set on a terminal record, for the saga outcome metric.
 */
export type OutboxEntry =
  | {
      readonly id: string;
      readonly kind: "publish";
      readonly topic: string;
      readonly key: string;
      readonly typeName: string;
      readonly contentType: string;
      /** The encoded message, base64. */
      readonly value: string;
      readonly cause?: string;
      readonly outcome?: SagaOutcome;
    }
  | { readonly id: string; readonly kind: "park"; readonly compensation: Compensation; readonly attempts: number; readonly cause?: string };

export type OutboxPublish = Extract<OutboxEntry, { kind: "publish" }>;

/** When an outbox entry was decided: its id is a UUIDv7, whose first 48 bits are Unix milliseconds. */
export function entryCreatedMs(entry: Pick<OutboxEntry, "id">): number {
  return parseInt(entry.id.replaceAll("-", "").slice(0, 12), 16);
}

function encoded(effect: Publish, encoding: Encoding): Buffer {
  const schema: DescMessage = effect.schema;
  const message = create(schema, effect.message);
  try {
    assertValid(schema, message);
  } catch (err) {
    throw new RejectedError(`the saga decided an invalid ${schema.typeName}: ${messageOf(err)}`, { cause: err });
  }
  return encoding === "json" ? Buffer.from(toJsonString(schema, message, { useProtoFieldName: true })) : Buffer.from(toBinary(schema, message));
}

/**
 * Turns decided effects into outbox entries: every message validated and encoded now, so the
 * outbox is plain JSON. Throws a non-retriable RejectedError for an invalid message.
 */
export function toOutbox(effects: readonly Effect[], options: { readonly encoding: Encoding; readonly state: SagaState; readonly cause?: string }): OutboxEntry[] {
  const cause = options.cause === undefined ? {} : { cause: options.cause };
  return effects.map((effect): OutboxEntry => {
    if (effect.kind === "park") return { id: newEventId(), kind: "park", compensation: effect.compensation, attempts: effect.attempts, ...cause };
    const outcome = sagaOutcomeOf(effect.topic, options.state);
    return {
      id: newEventId(),
      kind: "publish",
      topic: effect.topic,
      key: effect.key,
      typeName: effect.schema.typeName,
      contentType: contentTypes[options.encoding],
      value: encoded(effect, options.encoding).toString("base64"),
      ...cause,
      ...(outcome === undefined ? {} : { outcome }),
    };
  });
}

/** What the envelope of an already encoded value says beyond its type and content type. */
export interface EncodedEnvelope {
  readonly key: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly contentType: string;
  readonly orderId: string;
  readonly producer: string;
  readonly occurredAt: Date;
}

/**
 * A record ready to produce from bytes encoded (and validated) earlier: the envelope headers and
 * the key around them, nothing decoded. (A candidate for lib/codec beside encodeRecord.)
 */
export function encodedRecord(value: Buffer, envelope: EncodedEnvelope): OutgoingRecord {
  const { key, ...fields } = envelope;
  return { key, value, headers: envelopeHeaders({ ...fields, schemaVersion: SCHEMA_VERSION }) };
}

/** The record an outbox publish stands for; it occurred when it was decided. */
export function outboxRecord(entry: OutboxPublish, orderId: string, producer: string): OutgoingRecord {
  return encodedRecord(Buffer.from(entry.value, "base64"), {
    key: entry.key,
    eventId: entry.id,
    eventType: entry.typeName,
    contentType: entry.contentType,
    orderId,
    producer,
    occurredAt: new Date(entryCreatedMs(entry)),
  });
}
