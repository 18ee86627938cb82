import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import {
  EmailTemplate,
  InventoryAction,
  InventoryReleasedSchema,
  InventoryReservationFailedSchema,
  InventoryReservedSchema,
  OrderCancelRequestedSchema,
  OrderCreatedSchema,
  PaymentAction,
  PaymentCompletedSchema,
  PaymentFailedSchema,
  PaymentRefundedSchema,
  ReleaseReason,
  ShortageSchema,
  type EmailRequested,
  type InventoryActionRequested,
  type OrderFailed,
  type PaymentRequested,
} from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { toOutbox } from "./outbox.ts";
import { FAILURE_DETAIL_MAX, decide, isSettled, nextDueMs, type Effect, type SagaContext, type SagaInput, type SagaState } from "./saga.ts";

const context: SagaContext = {
  nowMs: 1_000_000,
  products: new Map([
    ["laptop", { currency: "USD", priceMinor: 99999n }],
    ["mouse", { currency: "USD", priceMinor: 2500n }],
  ]),
  stepTimeoutMs: 30_000,
  maxOrderMinor: 10_000_000n,
  compensationRetryMs: 1_000,
  compensationMaxAttempts: 3,
};

const orderId = randomUUID();
const created = (patch: Partial<MessageInitShape<typeof OrderCreatedSchema>> = {}): SagaInput => ({
  kind: "order-created",
  event: create(OrderCreatedSchema, Object.assign(sampleOf(OrderCreatedSchema, orderId), patch)),
});
const paid: SagaInput = { kind: "payment-completed", event: create(PaymentCompletedSchema, sampleOf(PaymentCompletedSchema, orderId)) };
const declined: SagaInput = { kind: "payment-failed", event: create(PaymentFailedSchema, sampleOf(PaymentFailedSchema, orderId)) };
const reserved: SagaInput = { kind: "stock-reserved", event: create(InventoryReservedSchema, sampleOf(InventoryReservedSchema, orderId)) };
const short: SagaInput = { kind: "stock-short", event: create(InventoryReservationFailedSchema, sampleOf(InventoryReservationFailedSchema, orderId)) };
const refunded: SagaInput = { kind: "payment-refunded", event: create(PaymentRefundedSchema, sampleOf(PaymentRefundedSchema, orderId)) };
const cancel: SagaInput = { kind: "cancel-requested", event: create(OrderCancelRequestedSchema, sampleOf(OrderCancelRequestedSchema, orderId)) };
const expired: SagaInput = {
  kind: "stock-released",
  event: create(InventoryReleasedSchema, { ...sampleOf(InventoryReleasedSchema, orderId), reason: ReleaseReason.EXPIRED }),
};

/** Runs inputs in order; returns the final state and every effect, each tagged with its topic. */
function run(inputs: readonly SagaInput[], ctx: SagaContext = context): { state: SagaState | undefined; effects: Effect[] } {
  let state: SagaState | undefined;
  const effects: Effect[] = [];
  for (const input of inputs) {
    const decision = decide(state, input, ctx);
    state = decision.state;
    effects.push(...decision.effects);
  }
  return { state, effects };
}

const topics = (effects: readonly Effect[]) => effects.flatMap((e) => (e.kind === "publish" ? [e.topic] : [`park:${e.compensation}`]));
const messagesOn = <T,>(effects: readonly Effect[], topic: string) =>
  effects.flatMap((e) => (e.kind === "publish" && e.topic === topic ? [e.message as T] : []));
const terminalTopics = (effects: readonly Effect[]) => topics(effects).filter((t) => ["orders.completed", "orders.failed", "orders.cancelled"].includes(t));
const emails = (effects: readonly Effect[]) => messagesOn<EmailRequested>(effects, "notifications.email").map((e) => e.template);
const paymentActions = (effects: readonly Effect[]) => messagesOn<PaymentRequested>(effects, "payments.requested").map((p) => p.action);
const inventoryActions = (effects: readonly Effect[]) => messagesOn<InventoryActionRequested>(effects, "inventory.requested").map((i) => i.action);

describe("saga: validation", () => {
  it("starts payment and reservation together for a valid order", () => {
    const { state, effects } = run([created()]);
    expect(state?.status).toBe(OrderStatus.VALIDATED);
    expect(topics(effects)).toEqual(["orders.validated", "payments.requested"]);
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE]);
    expect(state?.deadlineMs).toBe(context.nowMs + context.stepTimeoutMs);
  });

  it.each([
    ["an unknown SKU", { items: [{ productId: "unicorn", quantity: 1, unitPrice: { currencyCode: "USD", amountMinor: 1n } }], total: { currencyCode: "USD", amountMinor: 1n } }, /unknown product unicorn/],
    ["a price that is not the catalog's", { items: [{ productId: "laptop", quantity: 1, unitPrice: { currencyCode: "USD", amountMinor: 100n } }], total: { currencyCode: "USD", amountMinor: 100n } }, /laptop costs 99999/],
    ["a total that is not the sum", { total: { currencyCode: "USD", amountMinor: 5n } }, /does not equal the sum/],
    ["another currency", { items: [{ productId: "mouse", quantity: 1, unitPrice: { currencyCode: "EUR", amountMinor: 2500n } }], total: { currencyCode: "EUR", amountMinor: 2500n } }, /sold in USD, not EUR/],
    ["a total over the limit", { items: [{ productId: "laptop", quantity: 1000, unitPrice: { currencyCode: "USD", amountMinor: 99999n } }], total: { currencyCode: "USD", amountMinor: 99999000n } }, /exceeds the limit/],
  ])("fails %s with VALIDATION and starts nothing", (_name, patch, detail) => {
    const { state, effects } = run([created(patch)]);
    expect(state?.status).toBe(OrderStatus.FAILED);
    expect(state?.failure?.reason).toBe(FailureReason.VALIDATION);
    expect(state?.failure?.detail).toMatch(detail);
    expect(terminalTopics(effects)).toEqual(["orders.failed"]);
    expect(paymentActions(effects)).toEqual([]);
    expect(emails(effects)).toEqual([EmailTemplate.ORDER_FAILED]);
  });

  it("ignores a second OrderCreated for the same order", () => {
    const first = run([created()]);
    expect(decide(first.state, created(), context)).toEqual({ state: first.state, effects: [] });
  });
});

describe("saga: outcomes", () => {
  it.each([
    ["payment first", [created(), paid, reserved]],
    ["reservation first", [created(), reserved, paid]],
  ])("completes when both succeed (%s): the reservation counts as committed, confirm, email", (_name, inputs) => {
    const { state, effects } = run(inputs);
    expect(state?.status).toBe(OrderStatus.COMPLETED);
    expect(state?.stock).toBe("committed");
    expect(terminalTopics(effects)).toEqual(["orders.completed"]);
    expect(inventoryActions(effects)).toEqual([]);
    expect(emails(effects)).toEqual([EmailTemplate.ORDER_CONFIRMED]);
    expect(state?.deadlineMs).toBeUndefined();
  });

  it("a completed order's records are the lifecycle ones only: no audit record, no commit command", () => {
    let state: SagaState | undefined;
    const perInput = [created(), paid, reserved].map((input) => {
      const decision = decide(state, input, context);
      state = decision.state;
      return topics(decision.effects);
    });
    expect(perInput).toEqual([["orders.validated", "payments.requested"], [], ["orders.completed", "notifications.email"]]);
  });

  it("announces failures and cancels without audit records", () => {
    expect(topics(run([created(), declined]).effects)).toEqual(["orders.validated", "payments.requested", "orders.failed", "notifications.email"]);
    expect(topics(run([created(), cancel]).effects)).toEqual(["orders.validated", "payments.requested", "orders.cancelled", "notifications.email"]);
  });

  it("payment declined after the reservation: release, FAILED(PAYMENT), failure email", () => {
    const { state, effects } = run([created(), reserved, declined]);
    expect(state?.failure?.reason).toBe(FailureReason.PAYMENT);
    expect(inventoryActions(effects)).toEqual([InventoryAction.RELEASE]);
    expect(emails(effects)).toEqual([EmailTemplate.PAYMENT_FAILED]);
    expect(messagesOn<OrderFailed>(effects, "orders.failed")[0]?.refunded).toBe(false);
  });

  it("payment declined before the reservation: the late reservation is released", () => {
    const { state, effects } = run([created(), declined, reserved]);
    expect(state?.status).toBe(OrderStatus.FAILED);
    expect(inventoryActions(effects)).toEqual([InventoryAction.RELEASE]);
    expect(terminalTopics(effects)).toEqual(["orders.failed"]);
  });

  it("stock short after the charge: refund, FAILED(INVENTORY), out-of-stock email", () => {
    const { state, effects } = run([created(), paid, short]);
    expect(state?.failure?.reason).toBe(FailureReason.INVENTORY);
    expect(state?.failure?.detail).toMatch(/laptop: 3 wanted, 1 available/);
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE, PaymentAction.REFUND]);
    expect(emails(effects)).toEqual([EmailTemplate.OUT_OF_STOCK]);
    expect(messagesOn<OrderFailed>(effects, "orders.failed")[0]?.refunded).toBe(true);
  });

  it("a shortage over more lines than OrderFailed.detail holds still fails the order, with the detail cut to fit", () => {
    const lines = Array.from({ length: 120 }, (_, i) => create(ShortageSchema, { productId: `sku-with-a-long-name-${i}`, requested: 5, available: 0 }));
    const manyShort: SagaInput = { kind: "stock-short", event: create(InventoryReservationFailedSchema, { ...sampleOf(InventoryReservationFailedSchema, orderId), shortages: lines }) };
    const { state, effects } = run([created(), paid, manyShort]);
    expect(state?.failure?.reason).toBe(FailureReason.INVENTORY);
    expect(Array.from(state?.failure?.detail ?? "")).toHaveLength(FAILURE_DETAIL_MAX);
    // The outbox validates every decided record before it is stored: it must take this decision.
    const entries = toOutbox(effects, { encoding: "binary", state: state as SagaState });
    expect(entries.filter((e) => e.kind === "publish" && e.topic === "orders.failed")).toHaveLength(1);
  });

  it("stock short before the charge: the late charge is refunded", () => {
    const { state, effects } = run([created(), short, paid]);
    expect(state?.payment).toBe("refund_requested");
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE, PaymentAction.REFUND]);
    expect(terminalTopics(effects)).toEqual(["orders.failed"]);
  });

  it("a step that does not answer in time: compensate what is done, FAILED(TIMEOUT)", () => {
    const late = { ...context, nowMs: context.nowMs + context.stepTimeoutMs };
    const before = run([created(), reserved]);
    expect(decide(before.state, { kind: "tick" }, { ...context, nowMs: late.nowMs - 1 }).effects).toEqual([]);
    const { state, effects } = decide(before.state, { kind: "tick" }, late);
    expect(state?.failure).toEqual({ reason: FailureReason.TIMEOUT, detail: "payment did not answer in time" });
    expect(inventoryActions(effects)).toEqual([InventoryAction.RELEASE]);
  });

  describe("the reservation's expiry, decided by the saga alone", () => {
    const expiresAtMs = context.nowMs + 5_000;
    const reservedUntil: SagaInput = {
      kind: "stock-reserved",
      event: create(InventoryReservedSchema, { ...sampleOf(InventoryReservedSchema, orderId), expiresAt: timestampFromMs(expiresAtMs) }),
    };
    const at = (nowMs: number): SagaContext => ({ ...context, nowMs });
    const releases = (effects: readonly Effect[]) => messagesOn<InventoryActionRequested>(effects, "inventory.requested").map((i) => [i.action, i.reason]);

    it("the saga is due at the expiry, and a tick then fails the order and asks for an EXPIRED release", () => {
      const before = run([created(), reservedUntil]);
      expect(nextDueMs(before.state as SagaState)).toBe(expiresAtMs);
      expect(decide(before.state, { kind: "tick" }, at(expiresAtMs - 1)).effects).toEqual([]);
      const { state, effects } = decide(before.state, { kind: "tick" }, at(expiresAtMs));
      expect(state?.status).toBe(OrderStatus.FAILED);
      expect(state?.failure?.reason).toBe(FailureReason.TIMEOUT);
      expect(releases(effects)).toEqual([[InventoryAction.RELEASE, ReleaseReason.EXPIRED]]);
      expect(terminalTopics(effects)).toEqual(["orders.failed"]);
    });

    it("a charge that arrives after the expiry never completes the order: it fails, the charge is refunded, the units released", () => {
      const before = run([created(), reservedUntil]);
      const { state, effects } = decide(before.state, paid, at(expiresAtMs + 1));
      expect(state?.status).toBe(OrderStatus.FAILED);
      expect(terminalTopics(effects)).toEqual(["orders.failed"]);
      expect(paymentActions(effects)).toEqual([PaymentAction.REFUND]);
      expect(releases(effects)).toEqual([[InventoryAction.RELEASE, ReleaseReason.EXPIRED]]);
    });

    it("a charge before the expiry completes the order, and a later tick changes nothing", () => {
      const { state } = run([created(), reservedUntil, paid]);
      expect(state?.status).toBe(OrderStatus.COMPLETED);
      expect(nextDueMs(state as SagaState)).toBeUndefined();
      expect(decide(state, { kind: "tick" }, at(expiresAtMs + 1)).effects).toEqual([]);
    });
  });

  it("a reservation that expires before payment finishes fails the order and refunds a late charge", () => {
    const { state, effects } = run([created(), reserved, expired, paid]);
    expect(state?.failure?.reason).toBe(FailureReason.TIMEOUT);
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE, PaymentAction.REFUND]);
  });
});

describe("saga: cancel", () => {
  it("before completion: compensate and CANCELLED", () => {
    const { state, effects } = run([created(), paid, cancel, reserved]);
    expect(state?.status).toBe(OrderStatus.CANCELLED);
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE, PaymentAction.REFUND]);
    expect(inventoryActions(effects)).toEqual([InventoryAction.RELEASE]);
    expect(terminalTopics(effects)).toEqual(["orders.cancelled"]);
    expect(emails(effects)).toEqual([EmailTemplate.ORDER_CANCELLED]);
  });

  it("after completion: refund, the sold stock stays sold", () => {
    const { state, effects } = run([created(), paid, reserved, cancel]);
    expect(state?.status).toBe(OrderStatus.CANCELLED);
    expect(paymentActions(effects)).toEqual([PaymentAction.CHARGE, PaymentAction.REFUND]);
    expect(inventoryActions(effects)).toEqual([]);
    expect(terminalTopics(effects)).toEqual(["orders.completed", "orders.cancelled"]);
    expect(emails(effects)).toEqual([EmailTemplate.ORDER_CONFIRMED, EmailTemplate.ORDER_REFUNDED]);
  });

  it("after failure: nothing more happens", () => {
    const failed = run([created(), declined]);
    expect(decide(failed.state, cancel, context).effects).toEqual([]);
  });

  describe("before the order arrives", () => {
    const early = { reason: "changed my mind", requestedBy: "customer" };
    const cancelFirst: SagaInput = { kind: "cancel-requested", event: create(OrderCancelRequestedSchema, { ...sampleOf(OrderCancelRequestedSchema, orderId), ...early }) };

    it("asks to keep the cancel (nothing is known of the order yet)", () => {
      expect(decide(undefined, cancelFirst, context)).toEqual({ state: undefined, effects: [], earlyCancel: early });
    });

    it("the order then ends CANCELLED at once: nothing validated, charged or reserved", () => {
      const { earlyCancel } = decide(undefined, cancelFirst, context);
      const input = created();
      if (input.kind !== "order-created" || earlyCancel === undefined) throw new Error("no early cancel");
      const { state, effects } = decide(undefined, { ...input, earlyCancel }, context);
      expect(state).toMatchObject({ status: OrderStatus.CANCELLED, payment: "none", stock: "none" });
      expect(topics(effects)).toEqual(["orders.cancelled", "notifications.email"]);
      expect(messagesOn<{ reason: string; refunded: boolean }>(effects, "orders.cancelled")[0]).toMatchObject({ reason: early.reason, refunded: false });
      expect(emails(effects)).toEqual([EmailTemplate.ORDER_CANCELLED]);
      expect(state && isSettled(state)).toBe(true);
    });

    it("wins over a validation failure, and late answers or a redelivered cancel change nothing", () => {
      const input = created({ items: [{ productId: "no-such-sku", quantity: 1, unitPrice: { currencyCode: "USD", amountMinor: 1n } }] });
      if (input.kind !== "order-created") throw new Error("not an OrderCreated");
      const first = decide(undefined, { ...input, earlyCancel: early }, context);
      expect(terminalTopics(first.effects)).toEqual(["orders.cancelled"]);
      for (const later of [cancel, { kind: "tick" } as SagaInput]) expect(decide(first.state, later, { ...context, nowMs: context.nowMs + 10 * context.stepTimeoutMs }).effects).toEqual([]);
    });
  });
});

describe("saga: duplicates and compensations", () => {
  it("a duplicate answer has no second effect", () => {
    const once = run([created(), paid]);
    expect(decide(once.state, paid, context)).toEqual({ state: once.state, effects: [] });
    const done = run([created(), paid, reserved]);
    expect(decide(done.state, reserved, context).effects).toEqual([]);
  });

  it("re-sends an unconfirmed refund with backoff, then parks it", () => {
    let { state } = run([created(), paid, short]);
    expect(state?.pending.refund).toEqual({ attempts: 1, dueMs: context.nowMs + 1000 });
    const at = (ms: number) => ({ ...context, nowMs: ms });
    let decision = decide(state, { kind: "tick" }, at(context.nowMs + 1000));
    expect(paymentActions(decision.effects)).toEqual([PaymentAction.REFUND]);
    expect(decision.state?.pending.refund).toEqual({ attempts: 2, dueMs: context.nowMs + 1000 + 2000 });
    state = decision.state;
    decision = decide(state, { kind: "tick" }, at(context.nowMs + 3000));
    expect(decision.state?.pending.refund?.attempts).toBe(3);
    decision = decide(decision.state, { kind: "tick" }, at(context.nowMs + 100_000));
    expect(decision.effects).toEqual([{ kind: "park", compensation: "refund", attempts: 3 }]);
    expect(decision.state?.parked).toEqual(["refund"]);
    expect(decision.state && nextDueMs(decision.state)).toBeUndefined();
  });

  it("a confirmed refund settles it", () => {
    const { state } = run([created(), paid, short, refunded]);
    expect(state?.payment).toBe("refunded");
    expect(state?.pending.refund).toBeUndefined();
  });

  it("ignores inputs for an order it does not know", () => {
    expect(decide(undefined, paid, context)).toEqual({ state: undefined, effects: [] });
  });
});

describe("saga: when its record may expire", () => {
  const state = (inputs: readonly SagaInput[]) => {
    const result = run(inputs).state;
    if (result === undefined) throw new Error("no saga");
    return result;
  };

  it("only once settled: terminal, no deadline, nothing to re-send or resolve", () => {
    expect(isSettled(state([created()]))).toBe(false);
    expect(isSettled(state([created(), paid]))).toBe(false);
    expect(isSettled(state([created(), paid, reserved]))).toBe(true);
    // FAILED, but the refund is not confirmed yet.
    expect(isSettled(state([created(), paid, short]))).toBe(false);
    expect(isSettled(state([created(), paid, short, refunded]))).toBe(true);
  });

  it("not while a compensation is parked for an operator", () => {
    let decision = decide(state([created(), paid, short]), { kind: "tick" }, { ...context, nowMs: context.nowMs + 100_000 });
    for (let tick = 0; tick < 5 && decision.state?.parked.length === 0; tick += 1) decision = decide(decision.state, { kind: "tick" }, { ...context, nowMs: context.nowMs + 1_000_000 * (tick + 1) });
    expect(decision.state?.parked).toEqual(["refund"]);
    expect(decision.state && isSettled(decision.state)).toBe(false);
  });
});

describe("saga: invariants over every arrival order", () => {
  const answers = { paid, declined, reserved, short, cancel, tick: { kind: "tick" } as SagaInput };
  it("exactly one outcome; every charge of an incomplete order refunded; every reservation of an order that did not complete released", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("paid", "declined"),
        fc.constantFrom("reserved", "short"),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 1000 }),
        (payment, stock, withCancel, withTimeout, seed) => {
          const inputs: SagaInput[] = [answers[payment], answers[stock]];
          if (withCancel) inputs.push(answers.cancel);
          if (withTimeout) inputs.push(answers.tick);
          const order = fc.sample(fc.shuffledSubarray(inputs, { minLength: inputs.length, maxLength: inputs.length }), { seed, numRuns: 1 })[0] ?? inputs;
          let state: SagaState | undefined;
          const effects: Effect[] = [];
          for (const input of [created(), ...order]) {
            const decision = decide(state, input, input.kind === "tick" ? { ...context, nowMs: context.nowMs + context.stepTimeoutMs } : context);
            state = decision.state;
            effects.push(...decision.effects);
          }
          const terminals = terminalTopics(effects).filter((t) => t !== "orders.cancelled" || !terminalTopics(effects).includes("orders.completed"));
          expect(terminals).toHaveLength(1);
          const completed = state?.status === OrderStatus.COMPLETED;
          const charged = payment === "paid";
          if (charged && !completed) expect(paymentActions(effects)).toContain(PaymentAction.REFUND);
          const everCompleted = terminalTopics(effects).includes("orders.completed");
          // A completed order's reservation is committed by the inventory service on orders.completed.
          if (everCompleted) expect(state?.stock).toBe("committed");
          if (stock === "reserved" && !everCompleted) {
            // A tick may re-send an unconfirmed release; what matters is that it is the only action.
            expect(new Set(inventoryActions(effects))).toEqual(new Set([InventoryAction.RELEASE]));
          } else {
            expect(inventoryActions(effects)).toEqual([]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
