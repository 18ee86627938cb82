import { describe, expect, it } from "vitest";
import { evaluate, type Observed } from "./invariants.ts";

let n = 0;
const r = (topic: string, orderId: string, extra: Partial<Observed> = {}): Observed => ({ topic, orderId, eventId: `e${(n += 1)}`, ...extra });

describe("invariant rules", () => {
  it("passes a clean history and counts outcomes", () => {
    const report = evaluate({ records: [
      r("orders.created", "a"), r("payments.completed", "a", { ref: "p1" }), r("orders.completed", "a"),
      r("orders.created", "b"), r("payments.completed", "b", { ref: "p2" }), r("orders.failed", "b"), r("payments.refunded", "b"),
      r("orders.created", "c"), r("orders.failed", "c"),
      r("orders.created", "d"), r("orders.completed", "d"), r("payments.completed", "d", { ref: "p3" }), r("orders.cancelled", "d"), r("payments.refunded", "d"),
      r("notifications.email", "a", { ref: "a:CONFIRMED" }),
      r("notifications.sent", "a", { ref: "a:CONFIRMED", messageId: "m1" }), r("notifications.sent", "a", { ref: "a:CONFIRMED", messageId: "m1" }),
    ] });
    expect(report.ok).toBe(true);
    expect(report.accepted).toBe(4);
    expect(report.outcomes).toEqual({ completed: 1, failed: 2, cancelled: 0, refundedAfterCompletion: 1 });
  });

  it("catches each kind of violation", () => {
    const report = evaluate({
      records: [
        r("orders.created", "lost"),
        r("orders.created", "twice"), r("orders.completed", "twice"), r("orders.failed", "twice"),
        r("orders.created", "dup-end"), r("orders.failed", "dup-end"), r("orders.failed", "dup-end"),
        r("orders.created", "two-charges"), r("payments.completed", "two-charges", { ref: "p1" }), r("payments.completed", "two-charges", { ref: "p2" }), r("orders.completed", "two-charges"),
        r("orders.created", "kept"), r("payments.completed", "kept", { ref: "p9" }), r("orders.failed", "kept"),
        r("notifications.sent", "x", { ref: "x:CONFIRMED", messageId: "m1" }), r("notifications.sent", "x", { ref: "x:CONFIRMED", messageId: "m2" }),
        r("notifications.email", "y", { ref: "y:FAILED" }),
      ],
      stock: ["laptop: reserved is 2 but live reservations hold 1"],
    });
    expect(report.ok).toBe(false);
    expect(report.violations).toEqual({
      lost: ["lost"],
      twoOutcomes: ["twice", "dup-end"],
      duplicateCharges: ["two-charges"],
      unrefundedCharges: ["kept"],
      duplicateEmails: ["x:CONFIRMED"],
      missingEmails: ["y:FAILED"],
      stock: ["laptop: reserved is 2 but live reservations hold 1"],
      ordersPerKey: [],
      acceptedNotCreated: [],
      createdNotAccepted: [],
      completedNotCommitted: [],
      reservationNotReleased: [],
      cancelIgnored: [],
    });
  });

  it("finds an Idempotency-Key behind two orders, not one order recorded twice under its key", () => {
    const report = evaluate({ records: [
      // A retry that republished under the key's bound order id: one order.
      r("orders.created", "a", { idempotencyKey: "k-1" }), r("orders.created", "a", { idempotencyKey: "k-1" }), r("orders.failed", "a"),
      // A retry that made a new order for the same key: two orders, two charges for one intent.
      r("orders.created", "b1", { idempotencyKey: "k-2" }), r("orders.failed", "b1"),
      r("orders.created", "b2", { idempotencyKey: "k-2" }), r("orders.failed", "b2"),
      // Orders placed without a key are not grouped.
      r("orders.created", "c"), r("orders.failed", "c"), r("orders.created", "d", { idempotencyKey: "" }), r("orders.failed", "d"),
    ] });
    expect(report.violations.ordersPerKey).toEqual(["k-2"]);
    expect(report.ok).toBe(false);
  });

  it("compares the accepted set with orders.created both ways when the accepted ids are given", () => {
    const records = [r("orders.created", "a"), r("orders.failed", "a"), r("orders.created", "unanswered"), r("orders.failed", "unanswered")];
    const report = evaluate({ records, accepted: ["a", "never-recorded"] });
    expect(report.violations.acceptedNotCreated).toEqual(["never-recorded"]);
    expect(report.violations.createdNotAccepted).toEqual(["unanswered"]);
    expect(report.ok).toBe(false);
    expect(evaluate({ records, accepted: ["a", "unanswered"] }).ok).toBe(true);
    // Without the client's side the set rules have nothing to compare.
    expect(evaluate({ records }).violations.createdNotAccepted).toEqual([]);
  });

  it("audits money and mail where they really went when the books and the sink are given", () => {
    const records = [
      r("orders.created", "paid"), r("payments.completed", "paid", { ref: "ch_1" }), r("orders.completed", "paid"),
      r("orders.created", "hidden"), r("payments.completed", "hidden", { ref: "ch_2" }), r("orders.completed", "hidden"),
      r("orders.created", "failed"), r("orders.failed", "failed"),
    ];
    const ledger = [
      { kind: "charge" as const, id: "ch_1", orderId: "paid", amountMinor: "100" },
      // Taken by the processor but never reported on a topic: only the books show it.
      { kind: "charge" as const, id: "ch_9", orderId: "hidden", amountMinor: "100" },
      { kind: "charge" as const, id: "ch_2", orderId: "hidden", amountMinor: "100" },
      { kind: "charge" as const, id: "ch_3", orderId: "failed", amountMinor: "100" },
      { kind: "refund" as const, id: "re_1", orderId: "failed", chargeId: "ch_3", amountMinor: "100" },
    ];
    const mail = [
      { notificationId: "paid:CONFIRMED", messageId: "<a>" },
      { notificationId: "paid:CONFIRMED", messageId: "<b>" },
      // The same message again (a resend after a crash): one email.
      { notificationId: "failed:FAILED", messageId: "<c>" },
      { notificationId: "failed:FAILED", messageId: "<c>" },
    ];
    const report = evaluate({ records, ledger, mail, deadLetters: { "orders.created.dlq": 2 } });
    expect(report.violations.duplicateCharges).toEqual(["hidden"]);
    expect(report.violations.unrefundedCharges).toEqual([]);
    expect(report.violations.duplicateEmails).toEqual(["paid:CONFIRMED"]);
    expect(report).toMatchObject({ charges: 4, refunds: 1, emails: 3, resends: 1, deadLetters: { "orders.created.dlq": 2 }, ok: false });
    const unrefunded = evaluate({ records, ledger: ledger.slice(0, 4) });
    expect(unrefunded.violations.unrefundedCharges).toEqual(["failed"]);
  });

  it("finds oversell: a completed order whose reservation is not committed, a failed or cancelled one that still holds or sold its units", () => {
    const records = [
      r("orders.created", "sold"), r("orders.completed", "sold"),
      r("orders.created", "sold-then-refunded"), r("orders.completed", "sold-then-refunded"), r("orders.cancelled", "sold-then-refunded"),
      r("orders.created", "released"), r("orders.failed", "released"),
      r("orders.created", "short"), r("orders.failed", "short"),
      r("orders.created", "never-reserved"), r("orders.cancelled", "never-reserved"),
      // Completed on units that went back on sale (released at expiry) or were never taken.
      r("orders.created", "completed-on-released"), r("orders.completed", "completed-on-released"),
      r("orders.created", "completed-unreserved"), r("orders.completed", "completed-unreserved"),
      // Ended without completing, yet its units are still held or sold.
      r("orders.created", "failed-holding"), r("orders.failed", "failed-holding"),
      r("orders.created", "cancelled-sold"), r("orders.cancelled", "cancelled-sold"),
    ];
    const reservations = new Map([
      ["sold", "committed"], ["sold-then-refunded", "committed"], ["released", "released"], ["short", "rejected"],
      ["completed-on-released", "released"], ["failed-holding", "reserved"], ["cancelled-sold", "committed"],
    ]);
    const report = evaluate({ records, reservations });
    expect(report.violations.completedNotCommitted).toEqual(["completed-on-released", "completed-unreserved"]);
    expect(report.violations.reservationNotReleased).toEqual(["failed-holding", "cancelled-sold"]);
    expect(report.ok).toBe(false);
    // Without the reservations' states the rule has nothing to judge.
    expect(evaluate({ records }).ok).toBe(true);
  });

  it("finds an accepted cancel that did not take effect", () => {
    const records = [
      r("orders.created", "cancelled"), r("orders.cancelled", "cancelled"),
      r("orders.created", "refunded"), r("orders.completed", "refunded"), r("orders.cancelled", "refunded"), r("payments.completed", "refunded", { ref: "p1" }), r("payments.refunded", "refunded"),
      // It failed before the cancel reached the saga: nothing left to undo.
      r("orders.created", "failed-first"), r("orders.failed", "failed-first"),
      // The cancel was dropped: the order completed and kept the money.
      r("orders.created", "ignored"), r("orders.completed", "ignored"),
      r("orders.created", "not-cancelled"), r("orders.completed", "not-cancelled"),
    ];
    const report = evaluate({ records, cancelsAccepted: ["cancelled", "refunded", "failed-first", "ignored"] });
    expect(report.violations.cancelIgnored).toEqual(["ignored"]);
    expect(report.ok).toBe(false);
    expect(evaluate({ records, cancelsAccepted: ["cancelled", "refunded", "failed-first"] }).ok).toBe(true);
  });

  it("finds a charge of unknown outcome left unrefunded: the log says the payment failed, the processor's books say it charged", () => {
    const records = [
      // The attempt that timed out charged; a later one was declined: payments.failed, the order failed.
      r("orders.created", "unknown"), r("orders.failed", "unknown"),
      r("orders.created", "unknown-refunded"), r("orders.failed", "unknown-refunded"),
    ];
    const ledger = [
      { kind: "charge" as const, id: "ch_1", orderId: "unknown", amountMinor: "100" },
      { kind: "charge" as const, id: "ch_2", orderId: "unknown-refunded", amountMinor: "100" },
      { kind: "refund" as const, id: "re_2", orderId: "unknown-refunded", chargeId: "ch_2", amountMinor: "100" },
      // A charge for an order the log does not know at all (its orders.created lost): nothing kept it.
      { kind: "charge" as const, id: "ch_3", orderId: "unheard-of", amountMinor: "100" },
    ];
    const report = evaluate({ records, ledger });
    expect(report.violations.unrefundedCharges).toEqual(["unknown", "unheard-of"]);
    expect(evaluate({ records, ledger: [...ledger, { kind: "refund" as const, id: "re_1", orderId: "unknown", chargeId: "ch_1", amountMinor: "100" }, { kind: "refund" as const, id: "re_3", orderId: "unheard-of", chargeId: "ch_3", amountMinor: "100" }] }).ok).toBe(true);
  });
});
