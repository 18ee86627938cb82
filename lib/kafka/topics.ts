/**
 * Makes the broker match the topic catalog: creates what is missing with the catalog's partitions,
 * replication and configs, and reports drift (partition count, replication factor, configs) without
 * ever deleting, shrinking or rewriting anything.
 */
import type { Admin } from "./client.ts";

/** What a topic should look like on the broker. */
export interface DesiredTopic {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

export interface TopicState {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Overridden configs, when they could be read (see topic-configs.ts). */
  readonly configs?: Readonly<Record<string, string>>;
}

/** A difference between the catalog and the broker that apply does not fix by itself. */
export interface Drift {
  readonly topic: string;
  /** "partitions", "replication-factor", or "config:<name>". */
  readonly field: string;
  readonly desired: number | string;
  /** The broker's value; "(default)" when the topic does not override the config. */
  readonly actual: number | string;
}

export interface ApplyResult {
  readonly created: readonly string[];
  readonly unchanged: readonly string[];
  readonly drift: readonly Drift[];
}

/** Catalog fields apply needs, with the prefix already applied to the name. */
export interface CatalogTopic {
  readonly name: string;
  readonly partitions: number;
  readonly retentionMs: number;
  readonly cleanupPolicy: string;
  readonly maxMessageBytes: number;
}

/** Turns catalog entries into broker-level desired state for a profile. */
export function desiredTopics(
  topics: readonly CatalogTopic[],
  profile: { replicationFactor: number; minInsyncReplicas: number },
  prefix = "",
): DesiredTopic[] {
  return topics.map((topic) => ({
    name: `${prefix}${topic.name}`,
    partitions: topic.partitions,
    replicationFactor: profile.replicationFactor,
    configs: {
      "retention.ms": String(topic.retentionMs),
      "cleanup.policy": topic.cleanupPolicy,
      "max.message.bytes": String(topic.maxMessageBytes),
      "min.insync.replicas": String(profile.minInsyncReplicas),
    },
  }));
}

/** Compares desired and actual topics; pure, so the rules are tested without a broker. */
export function compareTopics(desired: readonly DesiredTopic[], actual: readonly TopicState[]): {
  missing: DesiredTopic[];
  present: string[];
  drift: Drift[];
} {
  const byName = new Map(actual.map((topic) => [topic.name, topic]));
  const missing: DesiredTopic[] = [];
  const present: string[] = [];
  const drift: Drift[] = [];
  for (const want of desired) {
    const have = byName.get(want.name);
    if (have === undefined) {
      missing.push(want);
      continue;
    }
    present.push(want.name);
    if (have.partitions !== want.partitions) {
      drift.push({ topic: want.name, field: "partitions", desired: want.partitions, actual: have.partitions });
    }
    if (have.replicationFactor !== want.replicationFactor) {
      drift.push({ topic: want.name, field: "replication-factor", desired: want.replicationFactor, actual: have.replicationFactor });
    }
    if (have.configs !== undefined) {
      for (const [name, value] of Object.entries(want.configs)) {
        const actual = have.configs[name] ?? "(default)";
        if (actual !== value) drift.push({ topic: want.name, field: `config:${name}`, desired: value, actual });
      }
    }
  }
  return { missing, present, drift };
}

/** Partitions and replication of the named topics that exist, with configs when `configs` is given. */
export async function describeTopics(
  admin: Admin,
  names: readonly string[],
  configs?: ReadonlyMap<string, Record<string, string>>,
): Promise<TopicState[]> {
  const existing = new Set(await admin.listTopics());
  const wanted = names.filter((name) => existing.has(name));
  if (wanted.length === 0) return [];
  const metadata = await admin.fetchTopicMetadata({ topics: wanted });
  return metadata.map((topic) => {
    const topicConfigs = configs?.get(topic.name);
    return {
      name: topic.name,
      partitions: topic.partitions.length,
      replicationFactor: topic.partitions[0]?.replicas.length ?? 0,
      ...(topicConfigs === undefined ? {} : { configs: topicConfigs }),
    };
  });
}

/** Creates missing topics and reports drift (configs too, when `configs` is given). Never deletes. */
export async function applyTopics(
  admin: Admin,
  desired: readonly DesiredTopic[],
  configs?: ReadonlyMap<string, Record<string, string>>,
): Promise<ApplyResult> {
  const actual = await describeTopics(admin, desired.map((topic) => topic.name), configs);
  const { missing, present, drift } = compareTopics(desired, actual);
  if (missing.length > 0) {
    await admin.createTopics({
      topics: missing.map((topic) => ({
        topic: topic.name,
        numPartitions: topic.partitions,
        replicationFactor: topic.replicationFactor,
        configEntries: Object.entries(topic.configs).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  return { created: missing.map((topic) => topic.name), unchanged: present, drift };
}
