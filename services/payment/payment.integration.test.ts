/**
 * The payment service in-process on the real broker and Redis: a charge becomes
 * payments.completed or payments.failed, a refund becomes payments.refunded, a repeated command
 * answers with the same payment, and a refund with nothing charged publishes nothing.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { PaymentInstrumentSchema, PaymentMethod } from "../../gen/orderflow/v1/common_pb.ts";
import { PaymentAction, PaymentFailureCode, PaymentRequestedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildPayment } from "./service.ts";
import { SimulatedGateway } from "./simulated-gateway.ts";

let t: TestKafka;
let r: TestRedis;
let service: RunningService;
let publisher: Publisher;
let watch: Awaited<ReturnType<typeof watchTopics>>;
const gateway = new SimulatedGateway();

beforeAll(async () => {
  t = await openTestKafka("payment-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  const env = serviceEnv(t, r.prefix, { GATEWAY_RETRY_INITIAL_MS: "1", GATEWAY_RETRY_MAX_MS: "5" });
  service = await startService("payment", buildPayment(env), env);
  publisher = await createPublisher(t.kafka, t.config);
  watch = await watchTopics(t, ["payments.completed", "payments.failed", "payments.refunded"]);
});

afterAll(async () => {
  await watch?.close();
  await publisher?.disconnect();
  await service?.stop();
  await r?.close();
  await t?.close();
});

const charge = async (orderId: string, card: string) => {
  const { token, last4 } = await gateway.tokenize(card);
  const command = create(PaymentRequestedSchema, sampleOf(PaymentRequestedSchema, orderId));
  command.instrument = create(PaymentInstrumentSchema, { method: PaymentMethod.CARD, token, cardLast4: last4 });
  await publisher.publish("payments.requested", PaymentRequestedSchema, command, { orderId });
};
const refund = (orderId: string) => {
  const command = create(PaymentRequestedSchema, sampleOf(PaymentRequestedSchema, orderId));
  command.action = PaymentAction.REFUND;
  command.instrument = undefined;
  return publisher.publish("payments.requested", PaymentRequestedSchema, command, { orderId });
};

describe("payment service", () => {
  it("charges once, answers a repeat with the same payment, refunds once", async () => {
    const orderId = randomUUID();
    await charge(orderId, "4242424242424242");
    await charge(orderId, "4242424242424242");
    await waitFor(() => watch.of(orderId, "payments.completed").length === 2, { what: "both answers" });
    const ids = watch.of(orderId, "payments.completed").map((x) => (x.message as unknown as { paymentId: string }).paymentId);
    expect(new Set(ids).size).toBe(1);
    await refund(orderId);
    await watch.next(orderId, "payments.refunded");
    expect(await r.redis.hget(r.keys("payment", orderId), "state")).toBe("refunded");
  });

  it("reports a declined card, and refunds nothing that was not charged", async () => {
    const orderId = randomUUID();
    await charge(orderId, "4000000000009995");
    const failed = await watch.next(orderId, "payments.failed");
    expect((failed.message as unknown as { code: PaymentFailureCode }).code).toBe(PaymentFailureCode.INSUFFICIENT_FUNDS);
    await refund(orderId);
    const later = randomUUID();
    await charge(later, "4242424242424242");
    await watch.next(later, "payments.completed");
    expect(watch.of(orderId, "payments.refunded")).toEqual([]);
  });
});
