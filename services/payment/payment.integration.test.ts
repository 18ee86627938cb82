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
import { sampleOf } from "../../test/harness/samples.ts";
import { startTestService, type TestService } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildPayment } from "./service.ts";
import { SimulatedGateway } from "./simulated-gateway.ts";

let ctx: TestService;
const gateway = new SimulatedGateway();

beforeAll(async () => {
  ctx = await startTestService("payment", buildPayment, {
    env: { GATEWAY_RETRY_INITIAL_MS: "1", GATEWAY_RETRY_MAX_MS: "5" },
    watched: ["payments.completed", "payments.failed", "payments.refunded"],
  });
});

afterAll(() => ctx?.close());

const charge = async (orderId: string, card: string) => {
  const { token, last4 } = await gateway.tokenize(card);
  const command = create(PaymentRequestedSchema, sampleOf(PaymentRequestedSchema, orderId));
  command.instrument = create(PaymentInstrumentSchema, { method: PaymentMethod.CARD, token, cardLast4: last4 });
  await ctx.publisher.publish("payments.requested", PaymentRequestedSchema, command, { orderId });
};
const refund = (orderId: string) => {
  const command = create(PaymentRequestedSchema, sampleOf(PaymentRequestedSchema, orderId));
  command.action = PaymentAction.REFUND;
  command.instrument = undefined;
  return ctx.publisher.publish("payments.requested", PaymentRequestedSchema, command, { orderId });
};

describe("payment service", () => {
  it("charges once, answers a repeat with the same payment, refunds once", async () => {
    const orderId = randomUUID();
    await charge(orderId, "4242424242424242");
    await charge(orderId, "4242424242424242");
    await waitFor(() => ctx.watch.of(orderId, "payments.completed").length === 2, { what: "both answers" });
    const ids = ctx.watch.of(orderId, "payments.completed").map((x) => (x.message as unknown as { paymentId: string }).paymentId);
    expect(new Set(ids).size).toBe(1);
    await refund(orderId);
    await ctx.watch.next(orderId, "payments.refunded");
    expect(await ctx.r.redis.hget(ctx.r.keys("payment", orderId), "state")).toBe("refunded");
  });

  it("reports a declined card, and refunds nothing that was not charged", async () => {
    const orderId = randomUUID();
    await charge(orderId, "4000000000009995");
    const failed = await ctx.watch.next(orderId, "payments.failed");
    expect((failed.message as unknown as { code: PaymentFailureCode }).code).toBe(PaymentFailureCode.INSUFFICIENT_FUNDS);
    await refund(orderId);
    const later = randomUUID();
    await charge(later, "4242424242424242");
    await ctx.watch.next(later, "payments.completed");
    expect(ctx.watch.of(orderId, "payments.refunded")).toEqual([]);
  });
});
