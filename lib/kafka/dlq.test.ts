import { describe, expect, it } from "vitest";
import { PoisonRecordError } from "../errors.ts";
import { DlqHeaders, deadLetter, deadLetterHeaders, dlqTopicOf } from "./dlq.ts";

describe("dead-letter headers", () => {
  it("keep the original headers and say where the record came from and why", () => {
    const headers = deadLetterHeaders(
      { topic: "orders.created", partition: 2, offset: "41", key: Buffer.from("o-1"), value: Buffer.from("x"), headers: { "event-id": Buffer.from("e-1") } },
      { error: new PoisonRecordError("malformed", "bad bytes"), attempts: 1, firstSeen: new Date("2026-01-02T03:04:05Z"), service: "payment" },
    );
    expect(headers).toEqual({
      "event-id": "e-1",
      [DlqHeaders.originTopic]: "orders.created",
      [DlqHeaders.originPartition]: "2",
      [DlqHeaders.originOffset]: "41",
      [DlqHeaders.errorClass]: "poison.malformed",
      [DlqHeaders.errorMessage]: "bad bytes",
      [DlqHeaders.attempts]: "1",
      [DlqHeaders.firstSeen]: "2026-01-02T03:04:05.000Z",
      [DlqHeaders.service]: "payment",
    });
    expect(dlqTopicOf("orders.created")).toBe("orders.created.dlq");
  });

  it("bounds the error message", () => {
    const headers = deadLetterHeaders(
      { topic: "t", partition: 0, offset: "0", key: null, value: null },
      { error: new Error("x".repeat(5000)), attempts: 5, firstSeen: new Date(), service: "s" },
    );
    expect(headers[DlqHeaders.errorMessage]?.length).toBe(1000);
  });
});

describe("deadLetter", () => {
  it("sends a record without key or value to the DLQ with empty key and value", async () => {
    const sent: { topic: string; key: string; value: Buffer }[] = [];
    const capture = { send: (topic: string, record: { key: string; value: Buffer }) => Promise.resolve(void sent.push({ topic, ...record })).then(() => ({ topic, partition: 0, offset: "0" })) };
    await deadLetter(capture as never, { topic: "t", partition: 0, offset: "1", key: null, value: null }, { error: new Error("x"), attempts: 1, firstSeen: new Date(0), service: "s" });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ topic: "t.dlq", key: "", value: Buffer.alloc(0) });
  });
});
