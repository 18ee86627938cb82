/**
 * The invariant checker's rules, over what the topics say happened and — where the effect lives
 * outside Kafka — over the effect itself: every accepted order reached one outcome; at most one
 * charge per order and every charge of an order that did not complete refunded (from the payment
 * processor's own books when given, else from the topics); exactly one email per (order, template)
 * requested on notifications.email (counted at the SMTP sink when given — a resend of the same
 * message, same Message-ID, is the same email — else on notifications.sent); one order per
 * Idempotency-Key on orders.created; and, given the order ids the API answered 202 with, that set
 * equals the set on orders.created both ways (an order answered but never recorded is lost; one
 * recorded but never answered is an order the client could not know of). Given the reservations'
 * states from Redis, no oversell: an order that completed has its reservation committed, one that
 * failed or was cancelled before completing holds none (released, rejected or never made). Given
 * the orders whose cancel the API answered 202, every such cancel took effect: the order ended
 * CANCELLED (refunded, if it had completed first) or FAILED before the cancel reached it (nothing
 * left to undo) — never COMPLETED and kept, never without an outcome. Given the processor's books,
 * a charge it made for an order the log never finished with a kept completion (an unknown outcome
 * included: a call that timed out but charged) is refunded — also a charge for an order the log
 * does not know. Pure, so each rule is tested on its own; `orderflow check` gathers the evidence
 * and adds stock conservation from Redis.
 */
import type { LedgerEntry } from "../payment/simulated-gateway.ts";

/** One record as the checker needs it. */
export interface Observed {
  readonly topic: string;
  readonly orderId: string;
  readonly eventId: string;
  /** payment id for payments.*, notification id for notifications.sent, message id of the email. */
  readonly ref?: string;
  readonly messageId?: string;
  /** The Idempotency-Key an orders.created record was placed with (empty or absent: none). */
  readonly idempotencyKey?: string;
}

/** Everything the rules look at. */
export interface Evidence {
  readonly records: readonly Observed[];
  /** Stock conservation violations found in Redis. */
  readonly stock?: readonly string[];
  /** The payment processor's books: every charge and refund it actually made. */
  readonly ledger?: readonly LedgerEntry[];
  /** Emails the SMTP server received, by the notification they carry and their Message-ID. */
  readonly mail?: readonly { readonly notificationId: string; readonly messageId?: string }[];
  /** Records per dead-letter topic. */
  readonly deadLetters?: Readonly<Record<string, number>>;
  /** The order ids the API answered 202 with (the client's side); without it the set rules are skipped. */
  readonly accepted?: readonly string[];
  /** Each order's reservation state in the inventory's records (reserved, committed, released, rejected); absent: none. */
  readonly reservations?: ReadonlyMap<string, string>;
  /** The order ids whose cancel the API answered 202 (the client's side); without it the cancel rule is skipped. */
  readonly cancelsAccepted?: readonly string[];
}

export interface InvariantReport {
  readonly accepted: number;
  readonly outcomes: Readonly<Record<"completed" | "failed" | "cancelled" | "refundedAfterCompletion", number>>;
  /** Charges and refunds taken (by the processor's books when given), emails delivered. */
  readonly charges: number;
  readonly refunds: number;
  /** Distinct emails delivered; resends: the same message (same Message-ID) delivered again after a crash. */
  readonly emails: number;
  readonly resends: number;
  readonly deadLetters: Readonly<Record<string, number>>;
  readonly violations: {
    readonly lost: readonly string[];
    readonly twoOutcomes: readonly string[];
    readonly duplicateCharges: readonly string[];
    readonly unrefundedCharges: readonly string[];
    readonly duplicateEmails: readonly string[];
    readonly missingEmails: readonly string[];
    readonly stock: readonly string[];
    /** Idempotency-Keys behind more than one order id on orders.created. */
    readonly ordersPerKey: readonly string[];
    /** Order ids answered 202 that are not on orders.created. */
    readonly acceptedNotCreated: readonly string[];
    /** Order ids on orders.created that no 202 answered. */
    readonly createdNotAccepted: readonly string[];
    /** Orders that completed while their reservation is not committed (its units are back on sale, or never taken). */
    readonly completedNotCommitted: readonly string[];
    /** Orders that failed or were cancelled before completing and still hold (or sold) their reservation. */
    readonly reservationNotReleased: readonly string[];
    /** Orders whose cancel was answered 202 but that completed and kept it, or never ended. */
    readonly cancelIgnored: readonly string[];
  };
  readonly ok: boolean;
}

const outcomeTopics = { "orders.completed": "completed", "orders.failed": "failed", "orders.cancelled": "cancelled" } as const;

function group<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

const distinct = (values: readonly (string | undefined)[]) => new Set(values.filter((v) => v !== undefined)).size;

/** Applies every rule to the evidence. */
export function evaluate(evidence: Evidence): InvariantReport {
  const { records, ledger, mail } = evidence;
  const byOrder = group(records, (r) => r.orderId);
  const accepted = [...byOrder].filter(([, rs]) => rs.some((r) => r.topic === "orders.created"));
  const chargesBy = group(ledger?.filter((e) => e.kind === "charge") ?? [], (e) => e.orderId);
  const refundedCharges = new Set(ledger?.filter((e) => e.kind === "refund").map((e) => e.chargeId) ?? []);
  const outcomes = { completed: 0, failed: 0, cancelled: 0, refundedAfterCompletion: 0 };
  const lost: string[] = [];
  const twoOutcomes: string[] = [];
  const duplicateCharges: string[] = [];
  const unrefundedCharges: string[] = [];
  const completedNotCommitted: string[] = [];
  const reservationNotReleased: string[] = [];
  const cancelIgnored: string[] = [];
  const cancelsAccepted = new Set(evidence.cancelsAccepted ?? []);
  for (const [orderId, rs] of accepted) {
    const ends = [...new Set(rs.flatMap((r) => (r.topic in outcomeTopics ? [outcomeTopics[r.topic as keyof typeof outcomeTopics]] : [])))];
    const endRecords = rs.filter((r) => r.topic in outcomeTopics);
    if (ends.length === 0) lost.push(orderId);
    else if (ends.length === 2 && ends.includes("completed") && ends.includes("cancelled")) outcomes.refundedAfterCompletion += 1;
    else if (ends.length > 1 || distinct(endRecords.map((r) => r.eventId)) > 1) twoOutcomes.push(orderId);
    else outcomes[ends[0]] += 1;
    const kept = ends.length === 1 && ends[0] === "completed";
    if (evidence.reservations !== undefined && ends.length > 0) {
      const reservation = evidence.reservations.get(orderId);
      if (ends.includes("completed")) {
        if (reservation !== "committed") completedNotCommitted.push(orderId);
      } else if (reservation === "reserved" || reservation === "committed") {
        reservationNotReleased.push(orderId);
      }
    }
    if (cancelsAccepted.has(orderId) && !ends.includes("cancelled") && !(ends.length === 1 && ends[0] === "failed")) cancelIgnored.push(orderId);
    if (ledger === undefined) {
      const charges = distinct(rs.filter((r) => r.topic === "payments.completed").map((r) => r.ref));
      if (charges > 1) duplicateCharges.push(orderId);
      if (charges > 0 && !kept && !rs.some((r) => r.topic === "payments.refunded")) unrefundedCharges.push(orderId);
    } else {
      const charges = chargesBy.get(orderId) ?? [];
      if (charges.length > 1) duplicateCharges.push(orderId);
      if (!kept && charges.some((charge) => !refundedCharges.has(charge.id))) unrefundedCharges.push(orderId);
    }
  }
  const duplicateEmails =
    mail === undefined
      ? [...group(records.filter((r) => r.topic === "notifications.sent"), (r) => r.ref ?? "")].filter(([, sent]) => distinct(sent.map((s) => s.messageId)) > 1).map(([id]) => id)
      : [...group(mail, (m) => m.notificationId)].filter(([, delivered]) => distinct(delivered.map((m) => m.messageId ?? "")) > 1).map(([id]) => id);
  const requested = new Set(records.filter((r) => r.topic === "notifications.email").map((r) => r.ref ?? ""));
  const delivered = new Set(mail === undefined ? records.filter((r) => r.topic === "notifications.sent").map((r) => r.ref ?? "") : mail.map((m) => m.notificationId));
  const missingEmails = [...requested].filter((id) => !delivered.has(id));
  const keyed = records.filter((r) => r.topic === "orders.created" && r.idempotencyKey);
  const ordersPerKey = [...group(keyed, (r) => r.idempotencyKey ?? "")].filter(([, created]) => distinct(created.map((r) => r.orderId)) > 1).map(([key]) => key);
  const createdIds = new Set(accepted.map(([orderId]) => orderId));
  // Charges the processor made for orders the log does not know: nothing can have kept them.
  for (const [orderId, charges] of chargesBy) {
    if (!createdIds.has(orderId) && charges.some((charge) => !refundedCharges.has(charge.id))) unrefundedCharges.push(orderId);
  }
  const answered = new Set(evidence.accepted ?? []);
  const acceptedNotCreated = evidence.accepted === undefined ? [] : [...answered].filter((id) => !createdIds.has(id));
  const createdNotAccepted = evidence.accepted === undefined ? [] : [...createdIds].filter((id) => !answered.has(id));
  const violations = {
    lost, twoOutcomes, duplicateCharges, unrefundedCharges, duplicateEmails, missingEmails, stock: evidence.stock ?? [],
    ordersPerKey, acceptedNotCreated, createdNotAccepted, completedNotCommitted, reservationNotReleased, cancelIgnored,
  };
  return {
    accepted: accepted.length,
    outcomes,
    charges: ledger === undefined ? records.filter((r) => r.topic === "payments.completed").length : (ledger.filter((e) => e.kind === "charge").length),
    refunds: ledger === undefined ? records.filter((r) => r.topic === "payments.refunded").length : refundedCharges.size,
    emails: mail === undefined ? distinct(records.filter((r) => r.topic === "notifications.sent").map((r) => r.messageId)) : distinct(mail.map((m) => `${m.notificationId} ${m.messageId ?? ""}`)),
    resends: mail === undefined ? 0 : mail.length - distinct(mail.map((m) => `${m.notificationId} ${m.messageId ?? ""}`)),
    deadLetters: evidence.deadLetters ?? {},
    violations,
    ok: Object.values(violations).every((v) => v.length === 0),
  };
}
