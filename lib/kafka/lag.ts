/**
 * Consumer lag from the broker's point of view: the group's committed offset against each
 * partition's high watermark. Used by the stall watchdog, metrics and the monitor.
 */
import type { Admin } from "./client.ts";

export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  readonly committed: number;
  readonly highWatermark: number;
  readonly lag: number;
}

/** Lag of `groupId` on every partition of `topics`. A partition never committed counts from its low watermark. */
export async function groupLag(admin: Admin, groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  const lags: PartitionLag[] = [];
  for (const topic of topics) {
    const watermarks = await admin.fetchTopicOffsets(topic);
    const groupTopic = committed.find((entry) => entry.topic === topic);
    for (const mark of watermarks) {
      const high = Number(mark.high);
      const low = Number(mark.low);
      const offset = Number(groupTopic?.partitions.find((p) => p.partition === mark.partition)?.offset ?? -1);
      const from = offset >= 0 ? offset : low;
      lags.push({ topic, partition: mark.partition, committed: offset, highWatermark: high, lag: Math.max(0, high - from) });
    }
  }
  return lags;
}
