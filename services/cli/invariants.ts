/**
 * The invariant checker's rules, over what the topics say happened: every accepted order reached
 * one outcome; at most one charge per order; every charge of an order that did not complete was
 * refunded; at most one email per (order, template). Pure, so each rule is tested on its own; the
 * `orderflow check` command feeds it the log and adds stock conservation from Redis.
 */

/** One record as the checker needs it. */
export interface Observed {
  readonly topic: string;
  readonly orderId: string;
  readonly eventId: string;
  /** payment id for payments.*, notification id for notifications.sent, message id of the email. */
  readonly ref?: string;
  readonly messageId?: string;
}

export interface InvariantReport {
  readonly accepted: number;
  readonly outcomes: Readonly<Record<"completed" | "failed" | "cancelled" | "refundedAfterCompletion", number>>;
  readonly violations: {
    readonly lost: readonly string[];
    readonly twoOutcomes: readonly string[];
    readonly duplicateCharges: readonly string[];
    readonly unrefundedCharges: readonly string[];
    readonly duplicateEmails: readonly string[];
    readonly stock: readonly string[];
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

/** Applies every rule to the observed records (and stock violations found elsewhere). */
export function evaluate(records: readonly Observed[], stockViolations: readonly string[] = []): InvariantReport {
  const byOrder = group(records, (r) => r.orderId);
  const accepted = [...byOrder].filter(([, rs]) => rs.some((r) => r.topic === "orders.created"));
  const outcomes = { completed: 0, failed: 0, cancelled: 0, refundedAfterCompletion: 0 };
  const lost: string[] = [];
  const twoOutcomes: string[] = [];
  const duplicateCharges: string[] = [];
  const unrefundedCharges: string[] = [];
  for (const [orderId, rs] of accepted) {
    const ends = [...new Set(rs.flatMap((r) => (r.topic in outcomeTopics ? [outcomeTopics[r.topic as keyof typeof outcomeTopics]] : [])))];
    const endRecords = rs.filter((r) => r.topic in outcomeTopics);
    if (ends.length === 0) lost.push(orderId);
    else if (ends.length === 2 && ends.includes("completed") && ends.includes("cancelled")) outcomes.refundedAfterCompletion += 1;
    else if (ends.length > 1 || distinct(endRecords.map((r) => r.eventId)) > 1) twoOutcomes.push(orderId);
    else outcomes[ends[0]] += 1;
    const charges = distinct(rs.filter((r) => r.topic === "payments.completed").map((r) => r.ref));
    if (charges > 1) duplicateCharges.push(orderId);
    const refunded = rs.some((r) => r.topic === "payments.refunded");
    if (charges > 0 && !refunded && !(ends.length === 1 && ends[0] === "completed")) unrefundedCharges.push(orderId);
  }
  const duplicateEmails = [...group(records.filter((r) => r.topic === "notifications.sent"), (r) => r.ref ?? "")]
    .filter(([, sent]) => distinct(sent.map((s) => s.messageId)) > 1)
    .map(([notification]) => notification);
  const violations = { lost, twoOutcomes, duplicateCharges, unrefundedCharges, duplicateEmails, stock: stockViolations };
  return { accepted: accepted.length, outcomes, violations, ok: Object.values(violations).every((v) => v.length === 0) };
}
