/**
 * Record operations per order, measured on the broker rather than declared: how many records each
 * topic gained over a run and how many each consumer group consumed.
 *
 * Produced: every partition is read from its high watermark at the start of the run to the one at
 * the end with `read_uncommitted`, counting records; a consumer is never handed transaction markers
 * (which take offsets too), so they are left out, while aborted records (work the broker did) are
 * counted. Consumed: the data records between a group's committed offset at the start and at the
 * end, per partition — after waiting (up to a deadline) for every group to commit past the last
 * record of the run.
 */
import type { Admin } from "../../lib/kafka/client.ts";
import { waitFor } from "../harness/wait.ts";
import { countBetween, recordOperations, type RecordOperations } from "./summary.ts";
import { readRanges } from "./topic-reader.ts";

type PartitionOffsets = Map<string, number>;

/** High watermarks of the topics and every group's committed offsets on them, at one moment. */
export interface OffsetsSnapshot {
  readonly high: PartitionOffsets;
  readonly committed: ReadonlyMap<string, PartitionOffsets>;
}

const partitionKey = (topic: string, partition: number) => `${topic}/${partition}`;

async function highWatermarks(admin: Admin, topics: readonly string[]): Promise<PartitionOffsets> {
  const high: PartitionOffsets = new Map();
  for (const topic of topics) {
    for (const mark of await admin.fetchTopicOffsets(topic)) high.set(partitionKey(topic, mark.partition), Number(mark.high));
  }
  return high;
}

async function committedOffsets(admin: Admin, topics: ReadonlySet<string>): Promise<Map<string, PartitionOffsets>> {
  const committed = new Map<string, PartitionOffsets>();
  for (const { groupId } of (await admin.listGroups()).groups) {
    const offsets: PartitionOffsets = new Map();
    for (const { topic, partitions } of await admin.fetchOffsets({ groupId })) {
      if (!topics.has(topic)) continue;
      for (const { partition, offset } of partitions) if (Number(offset) >= 0) offsets.set(partitionKey(topic, partition), Number(offset));
    }
    if (offsets.size > 0) committed.set(groupId, offsets);
  }
  return committed;
}

export async function snapshotOffsets(admin: Admin, topics: readonly string[]): Promise<OffsetsSnapshot> {
  return { high: await highWatermarks(admin, topics), committed: await committedOffsets(admin, new Set(topics)) };
}

/** Records produced per topic and consumed per group since `before`, per order of `orders`. */
export async function measureRecordOperations(
  admin: Admin,
  brokers: string,
  topics: readonly string[],
  before: OffsetsSnapshot,
  orders: number,
): Promise<RecordOperations & { groupsCaughtUp: boolean }> {
  const endHigh = await highWatermarks(admin, topics);
  // Read from where the run began, or from where a group still had to consume at that moment.
  const startOf = (key: string) => Math.min(before.high.get(key) ?? 0, ...[...before.committed.values()].map((offsets) => offsets.get(key) ?? Infinity));
  const ranges = [...endHigh].map(([key, to]) => {
    const at = key.lastIndexOf("/");
    return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)), from: startOf(key), to };
  });
  const offsets = new Map<string, number[]>();
  await readRanges(brokers, ranges, "read_uncommitted", (message) => {
    const key = partitionKey(message.topic, message.partition);
    const list = offsets.get(key) ?? [];
    if (list.length === 0) offsets.set(key, list);
    list.push(message.offset);
  });
  const produced: Record<string, number> = {};
  for (const { topic, partition } of ranges) {
    const key = partitionKey(topic, partition);
    produced[topic] = (produced[topic] ?? 0) + countBetween(offsets.get(key) ?? [], before.high.get(key) ?? 0, Infinity);
  }
  // Each group has consumed everything once its committed offset is past the last record it reads.
  const pastLastRecord = (committed: ReadonlyMap<string, PartitionOffsets>) =>
    [...committed.values()].every((groupOffsets) => [...groupOffsets].every(([key, offset]) => offset > (offsets.get(key)?.at(-1) ?? -1)));
  let after = await committedOffsets(admin, new Set(topics));
  const groupsCaughtUp = await waitFor(
    async () => {
      after = await committedOffsets(admin, new Set(topics));
      return pastLastRecord(after);
    },
    { timeoutMs: 30_000, intervalMs: 500, what: "every consumer group to commit the run's records" },
  ).then(
    () => true,
    () => false,
  );
  const consumed: Record<string, number> = {};
  for (const [group, groupOffsets] of after) {
    let records = 0;
    for (const [key, end] of groupOffsets) records += countBetween(offsets.get(key) ?? [], before.committed.get(group)?.get(key) ?? startOf(key), end);
    consumed[group] = records;
  }
  return { ...recordOperations(produced, consumed, orders), groupsCaughtUp };
}
