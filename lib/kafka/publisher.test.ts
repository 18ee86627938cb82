import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { loadConfig } from "../config.ts";
import { TransientError } from "../errors.ts";
import { Headers } from "../codec/envelope.ts";
import type { Producer } from "./client.ts";
import { publisherOf } from "./publisher.ts";

type Sent = { topic: string; messages: { key: string; value: Buffer; headers: Record<string, string> }[] };

/** Records what would be produced and answers like a delivery report (no broker in a unit test). */
function capturing(answer: (sent: Sent) => unknown) {
  const sent: Sent[] = [];
  const producer = {
    send: (record: Sent) => {
      sent.push(record);
      return Promise.resolve().then(() => answer(record));
    },
    disconnect: () => Promise.resolve(),
  } as unknown as Producer;
  return { sent, producer };
}

describe("publisher", () => {
  const config = loadConfig("order", { TOPIC_PREFIX: "p.", ORDERFLOW_ENCODING: "json" });

  it("encodes with the envelope, applies the prefix, keys by order and keeps a given event id", async () => {
    const { sent, producer } = capturing(() => [{ partition: 2, baseOffset: "7" }]);
    const orderId = randomUUID();
    const eventId = randomUUID();
    const delivery = await publisherOf(producer, config).publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), {
      orderId,
      eventId,
    });
    expect(delivery).toEqual({ topic: "p.orders.created", partition: 2, offset: "7" });
    const message = sent[0]?.messages[0];
    expect(message?.key).toBe(orderId);
    expect(message?.headers[Headers.eventId]).toBe(eventId);
    expect(message?.headers[Headers.contentType]).toBe("application/json");
  });

  it("falls back to the offset field and turns a missing or failed report into a TransientError", async () => {
    expect((await publisherOf(capturing(() => [{ partition: 0, offset: "3" }]).producer, config).send("x", { key: "k", value: Buffer.from("v"), headers: {} })).offset).toBe("3");
    await expect(publisherOf(capturing(() => []).producer, config).send("x", { key: "k", value: Buffer.from("v"), headers: {} })).rejects.toBeInstanceOf(TransientError);
    await expect(
      publisherOf(capturing(() => { throw new Error("broker down"); }).producer, config).send("x", { key: "k", value: Buffer.from("v"), headers: {} }),
    ).rejects.toThrow(/was not acknowledged: broker down/);
  });
});
