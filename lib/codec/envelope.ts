/**
 * The envelope: the Kafka headers every orderflow record carries, and their reading back.
 * Consumers decide how to decode a value from these headers alone.
 */
import { v7 as uuidv7 } from "uuid";

/** Header names. Kafka headers are case-sensitive; these are lower case. */
export const Headers = {
  eventId: "event-id",
  eventType: "event-type",
  contentType: "content-type",
  schemaVersion: "schema-version",
  orderId: "order-id",
  traceparent: "traceparent",
  tracestate: "tracestate",
  producer: "producer",
  occurredAt: "occurred-at",
} as const;

/** The version of our record layout; bumped when a change is not backward compatible. */
export const SCHEMA_VERSION = "1";

/** What the headers of one record say. */
export interface Envelope {
  /** UUIDv7: unique per record, time-ordered. */
  readonly eventId: string;
  /** Full proto name of the value, for example "orderflow.v1.OrderCreated". */
  readonly eventType: string;
  readonly contentType: string;
  readonly schemaVersion: string;
  readonly orderId: string;
  /** W3C trace context, when the producer was traced. */
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Service that produced the record. */
  readonly producer: string;
  readonly occurredAt: Date;
}

/** Kafka headers as the client hands them over. */
export type RawHeaders = Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;

/** Builds the header map for a new record. */
export function envelopeHeaders(envelope: Envelope): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.eventId]: envelope.eventId,
    [Headers.eventType]: envelope.eventType,
    [Headers.contentType]: envelope.contentType,
    [Headers.schemaVersion]: envelope.schemaVersion,
    [Headers.orderId]: envelope.orderId,
    [Headers.producer]: envelope.producer,
    [Headers.occurredAt]: envelope.occurredAt.toISOString(),
  };
  if (envelope.traceparent !== undefined) headers[Headers.traceparent] = envelope.traceparent;
  if (envelope.tracestate !== undefined) headers[Headers.tracestate] = envelope.tracestate;
  return headers;
}

/** A new event id. */
export function newEventId(): string {
  return uuidv7();
}

/** The last value of a header as a string, or undefined. */
export function headerValue(headers: RawHeaders | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  if (raw === undefined) return undefined;
  const last = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (last === undefined) return undefined;
  return typeof last === "string" ? last : last.toString("utf8");
}

/** Every header as a plain string map (the last value wins), for copying onto another record. */
export function flattenHeaders(headers: RawHeaders | undefined): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const name of Object.keys(headers ?? {})) {
    const value = headerValue(headers, name);
    if (value !== undefined) flat[name] = value;
  }
  return flat;
}
