/**
 * `orderflow topics apply|describe` — make the broker match the topic catalog, or show the
 * difference. Apply returns once the topics it created are usable (listed, every partition led).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Command } from "commander";
import { catalog, replication } from "../../infra/topics.ts";
import { describeTopicConfigs, findKafkaLibs } from "../../lib/kafka/topic-configs.ts";
import { messageOf } from "../../lib/errors.ts";
import type { Admin } from "../../lib/kafka/client.ts";
import { applyTopics, compareTopics, describeTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { output, type CliContext, type ContextFactory } from "./context.ts";

/** How long the broker may take to create or delete topics. */
export const TOPICS_TIMEOUT_MS = 60_000;

/** Tries `attempt` until it returns true, every 250 ms; throws naming `what` after TOPICS_TIMEOUT_MS. */
export async function pollUntil(what: string, attempt: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TOPICS_TIMEOUT_MS;
  let last: unknown;
  for (;;) {
    try {
      if (await attempt()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${TOPICS_TIMEOUT_MS / 1000} s waiting for ${what}${last === undefined ? "" : ` (${messageOf(last)})`}`);
    await sleep(250);
  }
}

/** Waits until the broker lists every topic of `names` with a leader for each partition. */
export async function waitUntilUsable(admin: Admin, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await pollUntil("the topics to be usable", async () => {
    const listed = new Set(await admin.listTopics());
    if (!names.every((name) => listed.has(name))) return false;
    const metadata = await admin.fetchTopicMetadata({ topics: [...names] });
    return metadata.every((topic) => topic.partitions.length > 0 && topic.partitions.every((p) => p.leader >= 0));
  });
}

const NO_CONFIGS = "topic configs not checked: no local Kafka tools (run `bash infra/kafka/kafka.sh fetch`)";

/** Broker-side topic configs, or undefined (with a note) when Kafka's tools are not cached here. */
async function brokerConfigs(ctx: CliContext) {
  return describeTopicConfigs(findKafkaLibs(ctx.config.cacheDir), ctx.config.kafka.brokers);
}

function driftLine(d: { topic: string; field: string; desired: number | string; actual: number | string }): string {
  return `! ${d.topic}: ${d.field} is ${d.actual}, catalog says ${d.desired} (not changed)`;
}

export function topicsCommand(context: ContextFactory): Command {
  const topics = new Command("topics").description("the topic catalog on the broker");

  topics
    .command("apply")
    .description("create missing topics (and their DLQs); report drift; never delete")
    .action(async () => {
      const ctx = context();
      const admin = ctx.kafka.admin();
      await admin.connect();
      try {
        const desired = desiredTopics(catalog, replication[ctx.config.topicProfile], ctx.config.topicPrefix);
        const configs = await brokerConfigs(ctx);
        const result = await applyTopics(admin, desired, configs);
        await waitUntilUsable(admin, result.created);
        output(ctx, { ...result, configsChecked: configs !== undefined }, [
          `created ${result.created.length}, already present ${result.unchanged.length} (profile ${ctx.config.topicProfile})`,
          ...result.created.map((name) => `  + ${name}`),
          ...result.drift.map(driftLine),
          ...(configs === undefined ? [NO_CONFIGS] : []),
        ]);
      } finally {
        await admin.disconnect();
      }
    });

  topics
    .command("describe")
    .description("show each catalog topic as the broker has it")
    .action(async () => {
      const ctx = context();
      const admin = ctx.kafka.admin();
      await admin.connect();
      try {
        const desired = desiredTopics(catalog, replication[ctx.config.topicProfile], ctx.config.topicPrefix);
        const configs = await brokerConfigs(ctx);
        const actual = await describeTopics(admin, desired.map((topic) => topic.name), configs);
        const { missing, drift } = compareTopics(desired, actual);
        output(ctx, { topics: actual, missing: missing.map((t) => t.name), drift, configsChecked: configs !== undefined }, [
          ...actual.map((t) => `${t.name.padEnd(40)} partitions=${t.partitions} rf=${t.replicationFactor} retention.ms=${t.configs?.["retention.ms"] ?? "?"}`),
          ...missing.map((t) => `${t.name.padEnd(40)} MISSING`),
          ...drift.map(driftLine),
          ...(configs === undefined ? [NO_CONFIGS] : []),
        ]);
        if (missing.length > 0 || drift.length > 0) process.exitCode = 1;
      } finally {
        await admin.disconnect();
      }
    });

  return topics;
}
