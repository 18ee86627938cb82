/** The saga as operators see it: one-word step and the done/held flags. */
import { describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import type { SagaState } from "../orchestrator/saga.ts";
import { sagaStateOf, sagaStep } from "./admin.ts";

const base: SagaState = {
  orderId: "o-1",
  customerId: "c-1",
  customerEmail: "a@example.com",
  currency: "USD",
  totalMinor: "100",
  lines: [],
  instrument: { method: 1, token: "tok", cardLast4: "4242" },
  status: OrderStatus.VALIDATED,
  payment: "requested",
  stock: "requested",
  pending: {},
  parked: [],
};

describe("sagaStep", () => {
  it.each<[string, Partial<SagaState>, string]>([
    ["pending", { status: OrderStatus.PENDING }, "VALIDATING"],
    ["both running", {}, "AWAITING_PAYMENT_AND_STOCK"],
    ["payment running", { stock: "reserved" }, "AWAITING_PAYMENT"],
    ["stock running", { payment: "charged" }, "AWAITING_STOCK"],
    ["nothing running yet not final", { payment: "charged", stock: "reserved" }, "FINISHING"],
    ["a parked compensation", { status: OrderStatus.FAILED, payment: "refund_requested", parked: ["refund"] }, "COMPENSATION_PARKED"],
    ["a pending compensation", { status: OrderStatus.FAILED, payment: "refund_requested", pending: { refund: { attempts: 1, dueMs: 5 } } }, "COMPENSATING"],
    ["completed", { status: OrderStatus.COMPLETED, payment: "charged", stock: "committed" }, "COMPLETED"],
    ["cancelled", { status: OrderStatus.CANCELLED, payment: "refunded", stock: "released" }, "CANCELLED"],
  ])("says %s", (_name, patch, step) => {
    expect(sagaStep({ ...base, ...patch })).toBe(step);
  });
});

describe("sagaStateOf", () => {
  it("maps ids, the deadline and whether payment and stock were taken", () => {
    expect(sagaStateOf({ ...base, payment: "refunded", paymentId: "pay-1", stock: "released", reservationId: "res-1", deadlineMs: 5000 })).toEqual({
      step: "FINISHING",
      paymentDone: true,
      stockReserved: true,
      paymentId: "pay-1",
      reservationId: "res-1",
      deadline: expect.objectContaining({ seconds: 5n }) as unknown,
    });
    expect(sagaStateOf({ ...base, payment: "declined", stock: "short" })).toMatchObject({ paymentDone: false, stockReserved: false, paymentId: "", reservationId: "" });
    expect(sagaStateOf(base).deadline).toBeUndefined();
  });
});
