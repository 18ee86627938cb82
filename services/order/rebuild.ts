/**
 * Rebuilds the order read model from the log: drop it, note the end of orders.created and of each
 * topic the live projection reads, then replay every record up to there — the same events the live
 * model was built from (orders.created as the order service applied it on accepting the order).
 * Dropping first and noting the end second means a record the live side applies meanwhile is either
 * replayed or kept — never lost; applying twice is harmless because the projection is idempotent by
 * event id.
 */
import { topicSpec } from "../../infra/topics.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import { topicName, type Admin } from "../../lib/kafka/client.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { type OrderProjection, rebuildTopics } from "./projection.ts";

export interface RebuildResult {
  readonly eventsApplied: number;
  readonly orders: number;
}

export async function rebuildProjection(deps: { admin: Admin; config: Config; projection: OrderProjection }, timeoutMs = 120_000): Promise<RebuildResult> {
  const { admin, config, projection } = deps;
  await projection.drop();
  let eventsApplied = 0;
  const orders = new Set<string>();
  await readToEnd(config, admin, rebuildTopics.map((base) => topicName(config, base)), async (message) => {
    const base = message.topic.slice(config.topicPrefix.length);
    const record = decodeUnlessPoison(message, topicSpec(base).valueTypes);
    if (record === undefined) return;
    if (await projection.apply(base, record)) eventsApplied += 1;
    orders.add(record.envelope.orderId);
  }, timeoutMs);
  return { eventsApplied, orders: orders.size };
}
