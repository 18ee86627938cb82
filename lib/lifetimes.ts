/**
 * How long Redis keeps what orderflow writes, derived from the topic catalog. Redis holds the
 * records that make a redelivery harmless (saga state, payment outcomes, reservations, sent-email
 * markers, the processor's ledger): such a record must outlive every copy of every record that can
 * still reach the service that reads it. ARCHITECTURE.md ("Redis keys and their lifetimes") lists
 * each key with its lifetime and why it is safe.
 */
import { catalog, DLQ_SUFFIX, unconsumedTopics, type TopicSpec } from "../infra/topics.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Added to the longest redelivery: consumer lag past retention's edge, clock skew, a late operator. */
export const DEDUP_MARGIN_MS = 7 * DAY_MS;

/** The read model is rebuildable from the log, so it only has to outlive its readers' interest. */
export const DEFAULT_READ_MODEL_LIFETIME_MS = 30 * DAY_MS;

/**
 * The longest time after its production that a record of a consumed topic can still be delivered:
 * a copy read at the end of its topic's retention can be dead-lettered, kept for its DLQ's
 * retention, replayed from there (`orderflow dlq replay`) onto the topic, and read again until that
 * topic's retention ends: retention + DLQ retention + retention, the longest of the catalog.
 */
export function longestRedeliveryMs(topics: readonly TopicSpec[] = catalog): number {
  const consumed = topics.filter((spec) => spec.kind !== "dead-letter" && !unconsumedTopics.has(spec.name));
  const retentionOf = (name: string) => topics.find((spec) => spec.name === name)?.retentionMs ?? 0;
  return Math.max(0, ...consumed.map((spec) => 2 * spec.retentionMs + retentionOf(spec.name + DLQ_SUFFIX)));
}

/** The default lifetime of a dedup record after its last write: the longest redelivery plus the margin. */
export const DEFAULT_DEDUP_LIFETIME_MS = longestRedeliveryMs() + DEDUP_MARGIN_MS;
