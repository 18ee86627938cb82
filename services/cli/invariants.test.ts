import { describe, expect, it } from "vitest";
import { evaluate, type Observed } from "./invariants.ts";

let n = 0;
const r = (topic: string, orderId: string, extra: Partial<Observed> = {}): Observed => ({ topic, orderId, eventId: `e${(n += 1)}`, ...extra });

describe("invariant rules", () => {
  it("passes a clean history and counts outcomes", () => {
    const report = evaluate([
      r("orders.created", "a"), r("payments.completed", "a", { ref: "p1" }), r("orders.completed", "a"),
      r("orders.created", "b"), r("payments.completed", "b", { ref: "p2" }), r("orders.failed", "b"), r("payments.refunded", "b"),
      r("orders.created", "c"), r("orders.failed", "c"),
      r("orders.created", "d"), r("orders.completed", "d"), r("payments.completed", "d", { ref: "p3" }), r("orders.cancelled", "d"), r("payments.refunded", "d"),
      r("notifications.sent", "a", { ref: "a:CONFIRMED", messageId: "m1" }), r("notifications.sent", "a", { ref: "a:CONFIRMED", messageId: "m1" }),
    ]);
    expect(report.ok).toBe(true);
    expect(report.accepted).toBe(4);
    expect(report.outcomes).toEqual({ completed: 1, failed: 2, cancelled: 0, refundedAfterCompletion: 1 });
  });

  it("catches each kind of violation", () => {
    const report = evaluate(
      [
        r("orders.created", "lost"),
        r("orders.created", "twice"), r("orders.completed", "twice"), r("orders.failed", "twice"),
        r("orders.created", "dup-end"), r("orders.failed", "dup-end"), r("orders.failed", "dup-end"),
        r("orders.created", "two-charges"), r("payments.completed", "two-charges", { ref: "p1" }), r("payments.completed", "two-charges", { ref: "p2" }), r("orders.completed", "two-charges"),
        r("orders.created", "kept"), r("payments.completed", "kept", { ref: "p9" }), r("orders.failed", "kept"),
        r("notifications.sent", "x", { ref: "x:CONFIRMED", messageId: "m1" }), r("notifications.sent", "x", { ref: "x:CONFIRMED", messageId: "m2" }),
      ],
      ["laptop: reserved is 2 but live reservations hold 1"],
    );
    expect(report.ok).toBe(false);
    expect(report.violations).toEqual({
      lost: ["lost"],
      twoOutcomes: ["twice", "dup-end"],
      duplicateCharges: ["two-charges"],
      unrefundedCharges: ["kept"],
      duplicateEmails: ["x:CONFIRMED"],
      stock: ["laptop: reserved is 2 but live reservations hold 1"],
    });
  });
});
