/**
 * Poison records for the fault suite, generated with fast-check: for one consumed topic, records
 * that its consumers cannot decode or that break the proto's validation rules — random bytes, a
 * valid message of another type, the right type with one field made invalid (bad UUIDs, empty ids,
 * negative or huge numbers, bad money and currency, unknown enums, over-long strings), truncated or
 * corrupted protobuf, missing, empty or unknown envelope headers, JSON that does not parse or is
 * not the message, values over the size limit, no value at all; some without a key. Every record
 * carries its poison id (`poison-<kind>-…`) as its key — or, when it has no key, in a header — so
 * the suite can find each one in the topic's DLQ. The same seed gives the same records.
 */
import { create, fromJson, toBinary, toJsonString, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import fc from "fast-check";
import { sagaTopics, topicSpec, unconsumedTopics } from "../../infra/topics.ts";
import { MAX_VALUE_BYTES, contentTypes } from "../../lib/codec/codec.ts";
import { Headers, SCHEMA_VERSION, envelopeHeaders, headerValue, type RawHeaders } from "../../lib/codec/envelope.ts";
import { sampleOf } from "../harness/samples.ts";

/** One poison record as it is produced: key and value may be null. */
export interface PoisonRecord {
  /** The record's poison id: its key, or (when the key is null) its POISON_ID_HEADER. */
  readonly id: string;
  readonly kind: PoisonKind;
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

export type PoisonKind =
  | "random-bytes"
  | "wrong-type"
  | "invalid-field"
  | "truncated"
  | "corrupted"
  | "missing-header"
  | "garbled-header"
  | "bad-json"
  | "null-value"
  | "oversized";

/** Carries the poison id of a record without a key (the DLQ keeps every original header). */
export const POISON_ID_HEADER = "chaos-poison-id";

const POISON_KEY_PREFIX = "poison-";

/** The poison id of a record read back (from a DLQ), or undefined for a record the poison fault did not send. */
export function poisonIdOf(record: { readonly key: Buffer | string | null; readonly headers?: RawHeaders }): string | undefined {
  const key = record.key?.toString() ?? "";
  if (key.startsWith(POISON_KEY_PREFIX)) return key;
  const id = headerValue(record.headers, POISON_ID_HEADER);
  return id?.startsWith(POISON_KEY_PREFIX) === true ? id : undefined;
}

/** The saga topics that some service consumes (and so dead-letters): the poison fault's targets. */
export const consumedTopics: readonly string[] = sagaTopics.map((s) => s.name).filter((name) => !unconsumedTopics.has(name));

/** Oversized records are about 1 MB each: one per 500 records of a topic (at least one), not one in ten. */
export const oversizedCount = (perTopic: number) => Math.min(perTopic, Math.max(1, Math.ceil(perTopic / 500)));

/** A producer name outside the services' own (whose records skip validation on the next hop). */
const PRODUCER = "chaos-poison";

const validator = createValidator();

/** The payload of a record before its id is attached. */
interface Draft {
  readonly kind: PoisonKind;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

const headersFor = (eventType: string, orderId: string, contentType: string = contentTypes.binary) =>
  envelopeHeaders({ eventId: orderId, eventType, contentType, schemaVersion: SCHEMA_VERSION, orderId, producer: PRODUCER, occurredAt: new Date(0) });

/** The samples' times, pinned so that the same seed gives the same bytes. */
const SAMPLE_TIME = timestampFromMs(Date.UTC(2030, 0, 1));

/** A valid message of `schema` about `orderId`, every top-level timestamp at SAMPLE_TIME. */
function sampleMessage(schema: DescMessage, orderId: string) {
  const message = create(schema, sampleOf(schema, orderId));
  const fields = reflect(schema, message);
  for (const field of schema.fields) {
    if (field.fieldKind === "message" && field.message.typeName === TimestampSchema.typeName && fields.isSet(field)) fields.set(field, reflect(TimestampSchema, create(TimestampSchema, SAMPLE_TIME)));
  }
  return message;
}

const binaryOf = (schema: DescMessage, orderId: string) => Buffer.from(toBinary(schema, sampleMessage(schema, orderId)));

/** A valid sample's proto3 JSON (proto field names), the starting point of field mutations. */
const jsonOf = (schema: DescMessage, orderId: string) => JSON.parse(toJsonString(schema, sampleMessage(schema, orderId), { useProtoFieldName: true })) as JsonObject;

/** Every path to a value inside a JSON tree (object keys and array indexes), the root excluded. */
export function pathsOf(value: JsonValue, prefix: readonly (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => [[...prefix, i], ...pathsOf(item, [...prefix, i])]);
  if (typeof value === "object" && value !== null) return Object.entries(value).flatMap(([k, item]) => [[...prefix, k], ...pathsOf(item, [...prefix, k])]);
  return [];
}

/** A copy of `root` with the value at `path` replaced (or removed, for undefined); `root` itself when the path is gone. */
export function replaced(root: JsonObject, path: readonly (string | number)[], next: JsonValue | undefined): JsonObject {
  const copy = structuredClone(root);
  let parent: JsonValue | undefined = copy;
  for (const step of path.slice(0, -1)) parent = typeof parent === "object" && parent !== null ? (parent as Record<string | number, JsonValue | undefined>)[step] : undefined;
  if (typeof parent !== "object" || parent === null) return root;
  const last = path[path.length - 1] ?? "";
  if (next !== undefined) (parent as Record<string | number, JsonValue>)[last] = next;
  else if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete parent[last];
  return copy;
}

/** Values that break the rules of a field of each JSON kind: ids, quantities, money, enums, lengths. */
const badStrings = fc.oneof(
  fc.constantFrom("", " ", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "-1", "-0.01", "1.2.3", "1e309", "9".repeat(40), "usd", "US", "XXXX", "NaN", "\u0000", "\u202e", "ORDER_STATUS_BOGUS"),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.integer({ min: 1_001, max: 20_000 }).map((n) => "x".repeat(n)),
);
const badNumbers = fc.oneof(
  fc.constantFrom(-1, 0, -2147483648, 2147483647, 4294967295, 999, -999),
  fc.integer({ min: -2147483648, max: -1 }),
  fc.constantFrom("-1", "-9223372036854775808", "9223372036854775807", "18446744073709551615", "0"),
);
const badAny = fc.oneof(badStrings, badNumbers, fc.constantFrom<JsonValue>(null, [], {}, true));

/** True when `json` parses as `schema` but breaks its validation rules. */
function parsesButInvalid(schema: DescMessage, json: JsonObject): boolean {
  try {
    return validator.validate(schema, fromJson(schema, json)).kind !== "valid";
  } catch {
    return false;
  }
}

/** The right type with one field (or a nested one) set to a value its rules refuse, or removed. */
const invalidField = (schema: DescMessage, orderId: string) => {
  const sample = jsonOf(schema, orderId);
  const paths = pathsOf(sample);
  return fc
    .record({ path: fc.constantFrom(...paths), value: fc.option(badAny, { nil: undefined, freq: 5 }), json: fc.boolean() })
    .map(({ path, value, json }) => ({ mutated: replaced(sample, path, value), json }))
    .filter(({ mutated }) => parsesButInvalid(schema, mutated))
    .map(({ mutated, json }): Draft => ({
      kind: "invalid-field",
      value: json ? Buffer.from(JSON.stringify(mutated)) : Buffer.from(toBinary(schema, fromJson(schema, mutated))),
      headers: headersFor(schema.typeName, orderId, json ? contentTypes.json : contentTypes.binary),
    }));
};

/** Where the top-level fields of an encoding begin and end, and the offsets inside them (a cut there leaves a field unfinished). */
function fieldLayout(bytes: Uint8Array): { boundaries: number[]; inside: number[] } {
  const reader = new BinaryReader(bytes);
  const boundaries = [0];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    reader.skip(wireType, fieldNo);
    boundaries.push(reader.pos);
  }
  return { boundaries, inside: Array.from({ length: bytes.length }, (_, i) => i).filter((i) => !boundaries.includes(i)) };
}

/** The varint encoding of a field tag. */
function tagBytes(fieldNo: number, wireType: number): Buffer {
  const bytes: number[] = [];
  let value = fieldNo * 8 + wireType;
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** The arbitrary of one poison record's payload for `base` (any kind but oversized). */
function draftOf(base: string, orderId: string): fc.Arbitrary<Draft> {
  const schema = topicSpec(base).valueTypes[0];
  if (schema === undefined) throw new Error(`${base} carries no value type`);
  const others = sagaTopics.flatMap((s) => s.valueTypes).filter((t) => t.typeName !== schema.typeName);
  const valid = binaryOf(schema, orderId);
  const headers = headersFor(schema.typeName, orderId);
  const contentType = fc.constantFrom(contentTypes.binary, contentTypes.json);
  const layout = fieldLayout(valid);
  const requiredHeaders = [Headers.eventId, Headers.eventType, Headers.schemaVersion, Headers.occurredAt];
  const weighted = (weight: number, arbitrary: fc.Arbitrary<Draft>) => ({ weight, arbitrary });
  return fc.oneof(
    weighted(3, fc.record({ bytes: fc.uint8Array({ maxLength: 512 }), contentType }).map(({ bytes, contentType: type }): Draft => ({ kind: "random-bytes", value: Buffer.from(bytes), headers: headersFor(schema.typeName, orderId, type) }))),
    weighted(2, fc.record({ other: fc.constantFrom(...others), json: fc.boolean() }).map(({ other, json }): Draft => ({
      kind: "wrong-type",
      value: json ? Buffer.from(toJsonString(other, sampleMessage(other, orderId))) : binaryOf(other, orderId),
      headers: headersFor(other.typeName, orderId, json ? contentTypes.json : contentTypes.binary),
    }))),
    weighted(6, invalidField(schema, orderId)),
    weighted(2, fc.constantFrom(...layout.inside).map((cut): Draft => ({ kind: "truncated", value: valid.subarray(0, cut), headers }))),
    // A tag with a wire type that does not exist (6, 7) spliced in between two fields: no reader can skip it.
    weighted(2, fc.record({ at: fc.constantFrom(...layout.boundaries), fieldNo: fc.integer({ min: 1, max: 536_870_911 }), wireType: fc.constantFrom(6, 7) }).map(({ at, fieldNo, wireType }): Draft => ({
      kind: "corrupted",
      value: Buffer.concat([valid.subarray(0, at), tagBytes(fieldNo, wireType), valid.subarray(at)]),
      headers,
    }))),
    weighted(2, fc.record({ missing: fc.subarray(requiredHeaders, { minLength: 1 }), empty: fc.boolean() }).map(({ missing, empty }): Draft => ({
      kind: "missing-header",
      value: valid,
      headers: Object.fromEntries(Object.entries(headers).flatMap(([name, value]) => (missing.includes(name as (typeof requiredHeaders)[number]) ? (empty ? [[name, ""]] : []) : [[name, value]]))),
    }))),
    weighted(3, fc.oneof(
      fc.string({ maxLength: 60 }).filter((s) => s.trim() !== "" && s !== schema.typeName).map((s) => ({ [Headers.eventType]: s })),
      fc.string({ maxLength: 10 }).filter((s) => s !== "" && s !== SCHEMA_VERSION).map((s) => ({ [Headers.schemaVersion]: s })),
      fc.oneof(fc.constantFrom("application/protobuf", "application/x-protobuf; charset=utf-8", "APPLICATION/JSON", "text/plain", "application/avro", "*/*"), fc.string({ minLength: 1, maxLength: 30 }))
        .filter((s) => s !== contentTypes.binary && s !== contentTypes.json)
        .map((s) => ({ [Headers.contentType]: s })),
      fc.string({ minLength: 1, maxLength: 30 }).filter((s) => Number.isNaN(new Date(s).getTime())).map((s) => ({ [Headers.occurredAt]: s })),
    ).map((garbled): Draft => ({ kind: "garbled-header", value: valid, headers: { ...headers, ...garbled } }))),
    weighted(3, fc.oneof(
      fc.string({ maxLength: 200 }).filter((s) => !parsesAsJson(s)),
      fc.oneof(fc.jsonValue({ maxDepth: 4 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)), fc.constantFrom("[]", "null", "0", '""')),
      fc.record({ field: fc.string({ minLength: 1, maxLength: 20 }).filter((f) => !schema.fields.some((d) => d.name === f || d.jsonName === f)), value: fc.jsonValue({ maxDepth: 2 }) })
        .map(({ field, value }) => JSON.stringify({ ...jsonOf(schema, orderId), [field]: value })),
      fc.integer({ min: 1, max: 2000 }).map((depth) => `${'{"order_id":'.repeat(depth)}1${"}".repeat(depth)}`),
    ).map((text): Draft => ({ kind: "bad-json", value: Buffer.from(text), headers: headersFor(schema.typeName, orderId, contentTypes.json) }))),
    weighted(1, fc.constant<Draft>({ kind: "null-value", value: null, headers })),
  );
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A value just over the limit the codec enforces, still under the topic's max.message.bytes (1 MiB). */
const oversized = (base: string, orderId: string) =>
  fc.integer({ min: 1, max: 40_000 }).map((extra): Draft => {
    const schema = topicSpec(base).valueTypes[0];
    if (schema === undefined) throw new Error(`${base} carries no value type`);
    const value = Buffer.alloc(MAX_VALUE_BYTES + extra, 0x7a);
    binaryOf(schema, orderId).copy(value);
    return { kind: "oversized", value, headers: headersFor(schema.typeName, orderId) };
  });

/** One record's draft, for a generated order id, with or without a key (one in ten keyless) and maybe an unknown header. */
const shapedDraft = (draft: (orderId: string) => fc.Arbitrary<Draft>) =>
  fc
    .record({ orderId: fc.uuid({ version: 4 }), keyless: fc.integer({ min: 1, max: 10 }).map((n) => n === 1), unknownHeader: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) })
    .chain(({ orderId, keyless, unknownHeader }) => draft(orderId).map((d) => ({ ...d, keyless, unknownHeader })));

/**
 * `count` poison records for the consumed topic `base`, the same for the same `seed`: about one
 * in 500 oversized (at least one), the rest of every other kind. Ids are `poison-<kind>-<topic>-<n>`.
 */
export function generatePoison(base: string, count: number, seed: number): PoisonRecord[] {
  const big = oversizedCount(count);
  const salt = [...base].reduce((h, c) => (h * 31 + c.charCodeAt(0)) | 0, 7);
  const sample = (draft: (orderId: string) => fc.Arbitrary<Draft>, n: number, offset: number) =>
    n <= 0 ? [] : fc.sample(shapedDraft(draft), { seed: (seed ^ (salt + offset)) | 0, numRuns: n });
  const drafts = [...sample((orderId) => draftOf(base, orderId), count - big, 0), ...sample((orderId) => oversized(base, orderId), big, 1)];
  return drafts.map(({ keyless, unknownHeader, ...d }, n): PoisonRecord => {
    const id = `${POISON_KEY_PREFIX}${d.kind}-${base}-${n}`;
    const headers = { ...(unknownHeader === undefined ? {} : { "x-chaos-unknown": unknownHeader }), ...d.headers };
    return keyless ? { id, kind: d.kind, key: null, value: d.value, headers: { ...headers, [POISON_ID_HEADER]: id } } : { id, kind: d.kind, key: id, value: d.value, headers };
  });
}
