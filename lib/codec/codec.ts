/**
 * Encoding and decoding of record values. Binary protobuf by default, proto3 JSON when configured;
 * the decoder follows the record's content-type header, checks the event type against what the
 * topic may carry, and validates with protovalidate. Anything it cannot read becomes a
 * PoisonRecordError, which the consumer runner dead-letters.
 */
import {
  create,
  fromBinary,
  fromJsonString,
  toBinary,
  toJsonString,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import { PoisonRecordError } from "../errors.ts";
import {
  Headers,
  SCHEMA_VERSION,
  envelopeHeaders,
  headerValue,
  newEventId,
  type Envelope,
  type RawHeaders,
} from "./envelope.ts";

export type Encoding = "binary" | "json";

/** The content-type header value of each encoding. */
export const contentTypes: Readonly<Record<Encoding, string>> = {
  binary: "application/x-protobuf",
  json: "application/json",
};

/** Values larger than this are refused on both sides (the broker default is about 1 MiB too). */
export const MAX_VALUE_BYTES = 1_000_000;

const validator = createValidator();

/** Renders violations as "field: message; field: message". */
export function describeViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${pathToString(v.field) || "(message)"}: ${v.message}`).join("; ");
}

/** Validates a message against its buf.validate rules; throws PoisonRecordError("invalid"). */
export function assertValid<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
  const result = validator.validate(schema, message);
  if (result.kind === "invalid") {
    throw new PoisonRecordError("invalid", `${schema.typeName} is invalid: ${describeViolations(result.violations)}`);
  }
  if (result.kind === "error") {
    throw new PoisonRecordError("invalid", `${schema.typeName} could not be validated: ${result.error.message}`, {
      cause: result.error,
    });
  }
}

/** A record ready to produce. */
export interface OutgoingRecord {
  readonly key: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

export interface EncodeOptions {
  /** Partition key: the order id, or the customer id for notifications. */
  readonly key: string;
  readonly orderId: string;
  readonly producer: string;
  readonly encoding: Encoding;
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Defaults to a new UUIDv7. Pass one to keep a retried produce recognisable. */
  readonly eventId?: string;
  readonly occurredAt?: Date;
}

/** Validates and encodes a message with its envelope. Throws PoisonRecordError if it is invalid. */
export function encodeRecord<Desc extends DescMessage>(
  schema: Desc,
  init: MessageInitShape<Desc>,
  options: EncodeOptions,
): OutgoingRecord {
  const message = create(schema, init);
  assertValid(schema, message);
  const value =
    options.encoding === "json"
      ? Buffer.from(toJsonString(schema, message, { useProtoFieldName: true }))
      : Buffer.from(toBinary(schema, message));
  const envelope: Envelope = {
    eventId: options.eventId ?? newEventId(),
    eventType: schema.typeName,
    contentType: contentTypes[options.encoding],
    schemaVersion: SCHEMA_VERSION,
    orderId: options.orderId,
    producer: options.producer,
    occurredAt: options.occurredAt ?? new Date(),
    ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }),
    ...(options.tracestate === undefined ? {} : { tracestate: options.tracestate }),
  };
  return { key: options.key, value, headers: envelopeHeaders(envelope) };
}

/** A record that was read, checked and validated. */
export interface DecodedRecord<Desc extends DescMessage = DescMessage> {
  readonly envelope: Envelope;
  readonly schema: Desc;
  readonly message: MessageShape<Desc>;
}

function requiredHeader(headers: RawHeaders | undefined, name: string): string {
  const value = headerValue(headers, name);
  if (value === undefined || value === "") {
    throw new PoisonRecordError("missing-header", `header ${name} is missing`);
  }
  return value;
}

function readEnvelope(headers: RawHeaders | undefined): Envelope {
  const occurredAtRaw = requiredHeader(headers, Headers.occurredAt);
  const occurredAt = new Date(occurredAtRaw);
  if (Number.isNaN(occurredAt.getTime())) {
    throw new PoisonRecordError("missing-header", `header ${Headers.occurredAt} is not a time: ${occurredAtRaw}`);
  }
  const traceparent = headerValue(headers, Headers.traceparent);
  const tracestate = headerValue(headers, Headers.tracestate);
  return {
    eventId: requiredHeader(headers, Headers.eventId),
    eventType: requiredHeader(headers, Headers.eventType),
    contentType: headerValue(headers, Headers.contentType) ?? contentTypes.binary,
    schemaVersion: requiredHeader(headers, Headers.schemaVersion),
    orderId: headerValue(headers, Headers.orderId) ?? "",
    producer: headerValue(headers, Headers.producer) ?? "",
    occurredAt,
    ...(traceparent === undefined ? {} : { traceparent }),
    ...(tracestate === undefined ? {} : { tracestate }),
  };
}

/**
 * Decodes a consumed record whose value must be one of `accepted`. Throws PoisonRecordError with
 * the reason when the headers, the bytes or the content do not hold up. Validation rules are
 * checked unless the record's producer is one of `trustedProducers`: our own services validate
 * what they encode, so a record they wrote is not validated again on the next hop (the header and
 * schema-version checks stay).
 */
export function decodeRecord<Desc extends DescMessage>(
  record: { readonly value: Buffer | null; readonly headers?: RawHeaders },
  accepted: readonly Desc[],
  trustedProducers?: ReadonlySet<string>,
): DecodedRecord<Desc> {
  if (record.value === null) throw new PoisonRecordError("malformed", "record has no value");
  if (record.value.length > MAX_VALUE_BYTES) {
    throw new PoisonRecordError("too-large", `value of ${record.value.length} bytes exceeds ${MAX_VALUE_BYTES}`);
  }
  const envelope = readEnvelope(record.headers);
  if (envelope.schemaVersion !== SCHEMA_VERSION) {
    throw new PoisonRecordError("unknown-type", `schema version ${envelope.schemaVersion} is not supported`);
  }
  const schema = accepted.find((candidate) => candidate.typeName === envelope.eventType);
  if (schema === undefined) {
    throw new PoisonRecordError(
      "unexpected-type",
      `${envelope.eventType} is not accepted here (expected ${accepted.map((s) => s.typeName).join(" | ")})`,
    );
  }
  let message: MessageShape<Desc>;
  try {
    if (envelope.contentType === contentTypes.binary) {
      message = fromBinary(schema, record.value);
    } else if (envelope.contentType === contentTypes.json) {
      message = fromJsonString(schema, record.value.toString("utf8"));
    } else {
      throw new PoisonRecordError("unsupported-content-type", `content-type ${envelope.contentType} is not supported`);
    }
  } catch (err) {
    if (err instanceof PoisonRecordError) throw err;
    throw new PoisonRecordError("malformed", `${envelope.eventType} could not be parsed: ${String(err)}`, { cause: err });
  }
  if (trustedProducers?.has(envelope.producer) !== true) assertValid(schema, message);
  return { envelope, schema, message };
}

/** For readers that skip what cannot be read (its DLQ copy tells why): the record, or undefined if it is poison. */
export function decodeUnlessPoison<Desc extends DescMessage>(
  record: { readonly value: Buffer | null; readonly headers?: RawHeaders },
  accepted: readonly Desc[],
): DecodedRecord<Desc> | undefined {
  try {
    return decodeRecord(record, accepted);
  } catch (err) {
    if (err instanceof PoisonRecordError) return undefined;
    throw err;
  }
}
