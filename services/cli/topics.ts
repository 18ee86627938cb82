/** `orderflow topics apply|describe` — make the broker match the topic catalog, or show the difference. */
import { Command } from "commander";
import { catalog, replication } from "../../infra/topics.ts";
import { describeTopicConfigs, findKafkaLibs } from "../../lib/kafka/topic-configs.ts";
import { applyTopics, compareTopics, describeTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { output, type CliContext, type ContextFactory } from "./context.ts";

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
