/**
 * Rebuilds the order read model from the log into a new generation and swaps it in, while the live
 * one keeps serving and being updated (generations.ts has the keys). In order:
 *
 * 1. Claim the next generation (a second rebuild is refused while this one holds the claim) and
 *    clear whatever a crashed rebuild left in it.
 * 2. Open it to the live projection: from here on every event the order service applies goes to
 *    the live generation and to this one, in one script.
 * 3. Note the end of orders.created and of each topic the live projection reads, and replay every
 *    record up to there into the new generation — the same events the live model was built from.
 * 4. Carry over from the live generation what the log no longer has: for every order it holds, the
 *    events the new generation has not seen (older than retention), so no order is lost.
 * 5. Swap: one script points readers at the new generation and ends the claim; then remove the
 *    old generation in batches.
 *
 * No event the live side applies is lost by the swap: one applied before step 2 was in the log
 * before step 3 noted its end (the live side applies only what the broker has acknowledged or
 * committed), so it is replayed — or, if retention removed it since, carried over in step 4; one
 * applied after step 2 is written to the new generation directly. Applying an event twice (live and
 * replayed) changes nothing: the projection is idempotent by event id and independent of arrival
 * order.
 */
import { topicSpec } from "../../infra/topics.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import { topicName, type Admin } from "../../lib/kafka/client.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { type OrderProjection, rebuildTopics } from "./projection.ts";

export interface RebuildResult {
  readonly eventsApplied: number;
  /** Orders met in the replay. */
  readonly orders: number;
  /** Orders that kept events of the previous generation the log no longer has. */
  readonly carriedOver: number;
}

/** How long a rebuild's claim lasts unless renewed; it is renewed at a third of that. */
const CLAIM_LEASE_MS = 30_000;

export async function rebuildProjection(deps: { admin: Admin; config: Config; projection: OrderProjection }, timeoutMs = 120_000): Promise<RebuildResult> {
  const { admin, config, projection } = deps;
  const { generations } = projection;
  const claim = await generations.claim(CLAIM_LEASE_MS);
  // A renewal that fails (Redis away, or the claim lost) is not fatal here: once the claim is lost,
  // every further write of this rebuild and its swap are refused, which ends it with that error.
  const renewal = setInterval(() => void generations.renew(claim, CLAIM_LEASE_MS).catch(() => undefined), CLAIM_LEASE_MS / 3);
  let swapped = false;
  try {
    await generations.remove(claim.generation);
    await generations.openToLiveWrites(claim);
    let eventsApplied = 0;
    const orders = new Set<string>();
    await readToEnd(config, admin, rebuildTopics.map((base) => topicName(config, base)), async (message) => {
      const base = message.topic.slice(config.topicPrefix.length);
      const record = decodeUnlessPoison(message, topicSpec(base).valueTypes);
      if (record === undefined) return;
      if (await projection.apply(base, record, claim)) eventsApplied += 1;
      orders.add(record.envelope.orderId);
    }, timeoutMs);
    const previous = await generations.live();
    let carriedOver = 0;
    for await (const ids of generations.orderIds(previous)) {
      const carried = await Promise.all(ids.map((orderId) => projection.carryOver(claim, previous, orderId)));
      carriedOver += carried.filter((events) => events > 0).length;
    }
    const replaced = await generations.swap(claim);
    swapped = true;
    await generations.remove(replaced);
    return { eventsApplied, orders: orders.size, carriedOver };
  } finally {
    clearInterval(renewal);
    // A rebuild that did not swap gives its claim up; a claim already lost needs no release.
    if (!swapped) await generations.release(claim).catch(() => undefined);
  }
}
