import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { catalog } from "../../infra/topics.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { OrderCreatedSchema, PaymentCompletedSchema, PaymentFailedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { MoneySchema } from "../../gen/orderflow/v1/common_pb.ts";
import { PoisonRecordError } from "../errors.ts";
import { MAX_VALUE_BYTES, assertValid, contentTypes, decodeRecord, decodeUnlessPoison, encodeRecord, type Encoding } from "./codec.ts";
import { Headers, SCHEMA_VERSION } from "./envelope.ts";

const eventTypes = catalog.flatMap((topic) => topic.valueTypes);

function encodeSample(encoding: Encoding, orderId = randomUUID()) {
  return encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key: orderId, orderId, producer: "test", encoding });
}

function poisonReason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PoisonRecordError) return err.reason;
    throw err;
  }
  throw new Error("expected a PoisonRecordError");
}

describe("codec round trip", () => {
  for (const encoding of ["binary", "json"] as const) {
    it.each(eventTypes.map((schema) => [schema.typeName, schema] as const))(`%s survives ${encoding}`, (_name, schema) => {
      const orderId = randomUUID();
      const init = sampleOf(schema, orderId);
      const record = encodeRecord(schema, init, { key: orderId, orderId, producer: "test", encoding, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
      const decoded = decodeRecord({ value: record.value, headers: record.headers }, [schema]);
      expect(decoded.message).toEqual(create(schema, init));
      expect(decoded.envelope.eventType).toBe(schema.typeName);
      expect(decoded.envelope.contentType).toBe(contentTypes[encoding]);
      expect(decoded.envelope.orderId).toBe(orderId);
      expect(decoded.envelope.traceparent).toMatch(/^00-0af7/);
    });
  }

  it("writes every envelope header", () => {
    const record = encodeSample("binary");
    for (const name of [Headers.eventId, Headers.eventType, Headers.contentType, Headers.schemaVersion, Headers.orderId, Headers.producer, Headers.occurredAt]) {
      expect(record.headers[name], name).toBeTruthy();
    }
    expect(record.headers[Headers.eventId]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(record.headers[Headers.schemaVersion]).toBe(SCHEMA_VERSION);
  });

  it("json values use the proto field names", () => {
    const record = encodeSample("json");
    expect(JSON.parse(record.value.toString("utf8"))).toHaveProperty("customer_email");
  });
});

describe("codec refuses what it cannot read", () => {
  it("refuses to encode an invalid message", () => {
    expect(poisonReason(() => encodeRecord(OrderCreatedSchema, { orderId: "not-a-uuid" }, { key: "k", orderId: "k", producer: "t", encoding: "binary" }))).toBe("invalid");
  });

  it("missing headers", () => {
    const { value } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value, headers: {} }, [OrderCreatedSchema]))).toBe("missing-header");
  });

  it("an unparseable occurred-at", () => {
    const { value, headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value, headers: { ...headers, [Headers.occurredAt]: "yesterday" } }, [OrderCreatedSchema]))).toBe("missing-header");
  });

  it("a type the topic does not carry", () => {
    const { value, headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value, headers }, [PaymentCompletedSchema]))).toBe("unexpected-type");
  });

  it("an unknown schema version", () => {
    const { value, headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value, headers: { ...headers, [Headers.schemaVersion]: "99" } }, [OrderCreatedSchema]))).toBe("unknown-type");
  });

  it("an unsupported content type", () => {
    const { value, headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value, headers: { ...headers, [Headers.contentType]: "text/csv" } }, [OrderCreatedSchema]))).toBe("unsupported-content-type");
  });

  it("random bytes", () => {
    const { headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value: Buffer.from([0xff, 0xff, 0xff, 0x0f, 0x01]), headers }, [OrderCreatedSchema]))).toBe("malformed");
  });

  it("broken json", () => {
    const { headers } = encodeSample("json");
    expect(poisonReason(() => decodeRecord({ value: Buffer.from("{not json"), headers }, [OrderCreatedSchema]))).toBe("malformed");
  });

  it("a null value", () => {
    const { headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value: null, headers }, [OrderCreatedSchema]))).toBe("malformed");
  });

  it("an oversized value", () => {
    const { headers } = encodeSample("binary");
    expect(poisonReason(() => decodeRecord({ value: Buffer.alloc(MAX_VALUE_BYTES + 1), headers }, [OrderCreatedSchema]))).toBe("too-large");
  });

  it("a well-formed message that breaks its rules, naming the field", () => {
    const { headers } = encodeSample("binary");
    const bad = create(PaymentFailedSchema, { orderId: randomUUID(), code: 0, message: "x" });
    const value = Buffer.from(toBinary(PaymentFailedSchema, bad));
    try {
      decodeRecord({ value, headers: { ...headers, [Headers.eventType]: PaymentFailedSchema.typeName } }, [PaymentFailedSchema]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PoisonRecordError);
      expect((err as PoisonRecordError).message).toContain("code");
      expect((err as PoisonRecordError).message).toContain("failed_at");
    }
  });

  it("checks cross-field rules: one currency per order", () => {
    const mixed = create(OrderCreatedSchema, sampleOf(OrderCreatedSchema));
    mixed.total = create(MoneySchema, { currencyCode: "EUR", amountMinor: 1n });
    expect(() => assertValid(OrderCreatedSchema, mixed)).toThrow(/currency/);
  });

  it("reads headers given as buffers and arrays", () => {
    const { value, headers } = encodeSample("binary");
    const raw = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [Buffer.from("stale"), Buffer.from(v)]]));
    expect(decodeRecord({ value, headers: raw }, [OrderCreatedSchema]).envelope.eventType).toBe(OrderCreatedSchema.typeName);
  });
});

describe("decodeUnlessPoison", () => {
  it("returns the record when it reads, undefined when it is poison", () => {
    const orderId = randomUUID();
    const { value, headers } = encodeSample("binary", orderId);
    expect(decodeUnlessPoison({ value, headers }, [OrderCreatedSchema])?.envelope.orderId).toBe(orderId);
    expect(decodeUnlessPoison({ value, headers }, [PaymentCompletedSchema])).toBeUndefined();
    expect(decodeUnlessPoison({ value: Buffer.from("not protobuf"), headers }, [OrderCreatedSchema])).toBeUndefined();
  });
});
