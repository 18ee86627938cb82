/**
 * What the dashboard reads from the broker itself: consumer lag per group and partition (committed
 * offset against the high watermark) and how many records each dead-letter topic holds (high minus
 * low watermark). Requests go strictly one after another, over an admin client the caller opens for
 * one round only (openRoundAdmin), and only after a bootstrap broker accepted a TCP connection:
 * librdkafka's admin client can abort the process when requests are in flight across a broker
 * restart, so no admin request waits on a broker that is away, and no client outlives its round.
 *
 * On a topic written in transactions, the last record of a partition is followed by a commit
 * marker that takes an offset but is never delivered, so a group that read everything commits one
 * below the high watermark: an idle partition would show lag 1. Short gaps like that are read by a
 * MarkerProbe, and those holding only markers count as lag 0; a gap it could not settle keeps its
 * raw lag.
 */
import { connect } from "node:net";
import { catalog, DLQ_SUFFIX } from "../../../infra/topics.ts";
import type { Config } from "../../../lib/config.ts";
import { openGroupAdmin, type Admin, type GroupAdmin, type Kafka } from "../../../lib/kafka/client.ts";
import type { Gap } from "./markers.ts";

/** The dashboard's own consumer group (under the topic prefix, like every group). */
export const DASHBOARD_GROUP = "admin-dashboard";

/**
 * The consumer groups of the services (the `group` of each runtime.consume in services/<name>/service.ts)
 * and the dashboard's own.
 */
export const watchedGroups = ["order-projection", "orchestrator", "payment", "inventory", "inventory-actions", "notification", DASHBOARD_GROUP] as const;

/** The catalog's dead-letter topics. */
export const dlqTopics = catalog.filter((spec) => spec.name.endsWith(DLQ_SUFFIX)).map((spec) => spec.name);

/** Lag of one group on one partition; names without the topic prefix. */
export interface PartitionLag {
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
  readonly lag: number;
}

export interface DlqCount {
  readonly topic: string;
  readonly records: number;
}

/** Low and high watermark of one partition. */
export interface Watermarks {
  readonly low: number;
  readonly high: number;
}

/** A partition's lag with the offsets it came from: the group's position and the high watermark. */
export interface PartitionPosition extends PartitionLag {
  readonly position: number;
  readonly high: number;
}

/** Lags up to this many records are checked for being only transaction markers. */
export const MARKER_GAP_MAX = 2;

/** Committed offsets of a group as the admin client returns them ("-1" when none). */
export type CommittedOffsets = readonly { readonly topic: string; readonly partitions: readonly { readonly partition: number; readonly offset: string }[] }[];

/**
 * Lag of a group's committed partitions: high watermark minus committed offset; a partition with no
 * commit yet lags by everything retained. Topics whose watermarks are unknown are left out.
 */
export function lagOf(
  group: string,
  committed: CommittedOffsets,
  watermarks: ReadonlyMap<string, ReadonlyMap<number, Watermarks>>,
): PartitionPosition[] {
  return committed.flatMap(({ topic, partitions }) =>
    partitions.flatMap(({ partition, offset }) => {
      const marks = watermarks.get(topic)?.get(partition);
      if (marks === undefined) return [];
      const position = Number(offset) >= 0 ? Number(offset) : marks.low;
      return [{ group, topic, partition, lag: Math.max(marks.high - position, 0), position, high: marks.high }];
    }),
  );
}

/** Total lag per group, every watched group present (0 when it has nothing committed). */
export function lagByGroup(lags: readonly PartitionLag[], groups: readonly string[]): Record<string, number> {
  const totals: Record<string, number> = Object.fromEntries(groups.map((group) => [group, 0]));
  for (const { group, lag } of lags) totals[group] = (totals[group] ?? 0) + lag;
  return totals;
}

/** Reads lag and DLQ sizes from the broker under a topic prefix. */
export class BrokerView {
  /** `markers` tells which short gaps hold only transaction markers. */
  constructor(
    private readonly admin: Admin,
    private readonly prefix: string,
    private readonly markers: { onlyMarkers(gaps: readonly Gap[]): Promise<ReadonlySet<Gap>> },
  ) {}

  /** Lag of every watched group; one failing request fails the whole read (the caller keeps the last). */
  async lag(): Promise<PartitionLag[]> {
    const watermarks = new Map<string, Map<number, Watermarks>>();
    const lags: PartitionPosition[] = [];
    for (const group of watchedGroups) {
      const committed = (await this.admin.fetchOffsets({ groupId: `${this.prefix}${group}` }))
        .filter(({ topic }) => topic.startsWith(this.prefix))
        .map(({ topic, partitions }) => ({ topic: topic.slice(this.prefix.length), partitions }));
      for (const { topic } of committed) {
        if (!watermarks.has(topic)) watermarks.set(topic, await this.#watermarks(topic));
      }
      lags.push(...lagOf(group, committed, watermarks));
    }
    const gaps = new Map<string, Gap>();
    for (const { topic, partition, position, high, lag } of lags) {
      if (lag > 0 && lag <= MARKER_GAP_MAX) gaps.set(`${topic}:${partition}:${position}`, { topic: `${this.prefix}${topic}`, partition, from: position, high });
    }
    const onlyMarkers = await this.markers.onlyMarkers([...gaps.values()]);
    const markerOnly = new Set([...onlyMarkers].map((gap) => `${gap.topic.slice(this.prefix.length)}:${gap.partition}:${gap.from}`));
    return lags.map(({ group, topic, partition, position, lag }) => ({ group, topic, partition, lag: markerOnly.has(`${topic}:${partition}:${position}`) ? 0 : lag }));
  }

  /** Records held by each catalog DLQ topic. */
  async dlq(): Promise<DlqCount[]> {
    const counts: DlqCount[] = [];
    for (const topic of dlqTopics) {
      let records = 0;
      for (const { low, high } of (await this.#watermarks(topic)).values()) records += high - low;
      counts.push({ topic, records });
    }
    return counts;
  }

  async #watermarks(topic: string): Promise<Map<number, Watermarks>> {
    const marks = await this.admin.fetchTopicOffsets(`${this.prefix}${topic}`);
    return new Map(marks.map((mark) => [mark.partition, { low: Number(mark.low), high: Number(mark.high) }]));
  }
}

/**
 * The group id of the consumer that round admin clients are made from; it never subscribes, joins
 * a group or commits (under the topic prefix, like every group).
 */
export const ROUND_ADMIN_GROUP = "admin-dashboard-offsets";

export type RoundAdmin = GroupAdmin;

/** The admin client of one dashboard round (lib/kafka/client.ts: openGroupAdmin says why not `kafka.admin()`). */
export function openRoundAdmin(kafka: Kafka, config: Config): Promise<RoundAdmin> {
  return openGroupAdmin(kafka, config, `${config.topicPrefix}${ROUND_ADMIN_GROUP}`);
}

/** An admin client for one round of requests, and how to close it. */
/** Whether any bootstrap broker ("host:port,host:port") accepts a TCP connection within `timeoutMs`. */
export async function brokerReachable(brokers: string, timeoutMs: number): Promise<boolean> {
  const attempts = brokers.split(",").map((broker) => {
    const at = broker.trim().lastIndexOf(":");
    const host = broker.trim().slice(0, at);
    const port = Number(broker.trim().slice(at + 1));
    return new Promise<boolean>((resolve) => {
      const socket = connect({ host, port, timeout: timeoutMs });
      const done = (reachable: boolean) => {
        socket.destroy();
        resolve(reachable);
      };
      socket.once("connect", () => done(true));
      socket.once("timeout", () => done(false));
      socket.once("error", () => done(false));
    });
  });
  return (await Promise.all(attempts)).some(Boolean);
}
