/** `orderflow topics apply|describe` — make the broker match the topic catalog, or show the difference. */
import { Command } from "commander";
import { catalog, replication } from "../../infra/topics.ts";
import { applyTopics, compareTopics, describeTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { output, type ContextFactory } from "./context.ts";

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
        const result = await applyTopics(admin, desired);
        output(ctx, result, [
          `created ${result.created.length}, already present ${result.unchanged.length} (profile ${ctx.config.topicProfile})`,
          ...result.created.map((name) => `  + ${name}`),
          ...result.drift.map((d) => `  ! ${d.topic}: ${d.field} is ${d.actual}, catalog says ${d.desired} (not changed)`),
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
        const actual = await describeTopics(admin, desired.map((topic) => topic.name));
        const { missing, drift } = compareTopics(desired, actual);
        output(ctx, { topics: actual, missing: missing.map((t) => t.name), drift }, [
          ...actual.map((t) => `${t.name.padEnd(40)} partitions=${t.partitions} rf=${t.replicationFactor}`),
          ...missing.map((t) => `${t.name.padEnd(40)} MISSING`),
          ...drift.map((d) => `! ${d.topic}: ${d.field} is ${d.actual}, catalog says ${d.desired}`),
        ]);
        if (missing.length > 0 || drift.length > 0) process.exitCode = 1;
      } finally {
        await admin.disconnect();
      }
    });

  return topics;
}
