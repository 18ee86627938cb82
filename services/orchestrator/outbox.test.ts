import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OrderValidatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { decodeRecord } from "../../lib/codec/codec.ts";
import { isRetriable } from "../../lib/errors.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { entryCreatedMs, outboxRecord, toOutbox, type OutboxPublish } from "./outbox.ts";
import type { Publish, SagaState } from "./saga.ts";

const orderId = randomUUID();
const validated: Publish = { kind: "publish", topic: "orders.validated", key: orderId, schema: OrderValidatedSchema, message: sampleOf(OrderValidatedSchema, orderId) };
const state = { status: 0, stock: "requested" } as unknown as SagaState;
const only = (entries: ReturnType<typeof toOutbox>): OutboxPublish => {
  const [entry] = entries;
  if (entry?.kind !== "publish") throw new Error("expected one publish entry");
  return entry;
};

describe("outbox entries", () => {
  it("keep the encoded bytes, which are sent as they are with the envelope", () => {
    const entry = only(toOutbox([validated], { encoding: "binary", state, cause: "evt-1" }));
    expect(Buffer.from(entry.value, "base64")).toEqual(Buffer.from(toBinary(OrderValidatedSchema, create(OrderValidatedSchema, validated.message))));
    expect(entry).toMatchObject({ topic: "orders.validated", key: orderId, typeName: OrderValidatedSchema.typeName, contentType: "application/x-protobuf", cause: "evt-1" });

    const record = outboxRecord(entry, orderId, "orchestrator");
    expect(record.value.toString("base64")).toBe(entry.value);
    expect(record.key).toBe(orderId);
    expect(record.headers).toMatchObject({ "event-id": entry.id, "event-type": OrderValidatedSchema.typeName, "order-id": orderId, producer: "orchestrator", "schema-version": "1" });
    expect(new Date(record.headers["occurred-at"] ?? "").getTime()).toBe(entryCreatedMs(entry));
    expect(fromBinary(OrderValidatedSchema, record.value).orderId).toBe(orderId);
  });

  it("keep the configured encoding: proto3 JSON under its content type", () => {
    const entry = only(toOutbox([validated], { encoding: "json", state }));
    const decoded = decodeRecord(outboxRecord(entry, orderId, "orchestrator"), [OrderValidatedSchema]);
    expect(decoded.envelope.contentType).toBe("application/json");
    expect(decoded.message.orderId).toBe(orderId);
  });

  it("refuse a decision whose message is invalid, with an error that is not retried", () => {
    const invalid: Publish = { ...validated, message: { ...validated.message, orderId: "" } };
    const attempt = () => toOutbox([validated, invalid], { encoding: "binary", state });
    expect(attempt).toThrow(/decided an invalid orderflow.v1.OrderValidated/);
    let thrown: unknown;
    try {
      attempt();
    } catch (err) {
      thrown = err;
    }
    expect(isRetriable(thrown)).toBe(false);
  });

});
