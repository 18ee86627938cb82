/**
 * `orderflow reset` — a clean slate for testing: pauses the services' consumers through the admin
 * service (when it answers), deletes and recreates every catalog topic and DLQ under TOPIC_PREFIX,
 * unlinks the Redis keys under REDIS_KEY_PREFIX (SCAN + UNLINK, never FLUSHALL), seeds the catalog
 * stock again and resumes the consumers. Asks for confirmation unless --yes.
 */
import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { catalog, replication } from "../../infra/topics.ts";
import { messageOf } from "../../lib/errors.ts";
import { applyTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { createRedis, type Redis } from "../../lib/redis.ts";
import type { Admin } from "../../lib/kafka/client.ts";
import { Code } from "@connectrpc/connect";
import { adminCode, callAdmin, findAdminToken } from "./admin-client.ts";
import { output, UsageError, warn, type CliContext, type ContextFactory } from "./context.ts";
import { defaultActor } from "./dlq.ts";
import { seedLine, seedStock, type SeedResult } from "./stock.ts";
import { pollUntil, TOPICS_TIMEOUT_MS, waitUntilUsable } from "./topics.ts";

/** The services whose consumption reset pauses while it works. */
export const pausedServices = ["order", "payment", "inventory", "notification", "orchestrator"] as const;

/** What reset did. */
export interface ResetResult {
  readonly paused: readonly string[];
  readonly topicsDeleted: readonly string[];
  readonly topicsCreated: readonly string[];
  readonly redisKeysDeleted: number;
  readonly catalog: SeedResult;
  readonly resumed: readonly string[];
}

/** A SCAN pattern matching exactly the keys under `prefix:` (glob characters in the prefix escaped). */
export function keyPattern(prefix: string): string {
  return `${prefix.replace(/[\\*?[\]]/g, "\\$&")}:*`;
}

/** Unlinks every key under `prefix:` in batches of one SCAN page; returns how many. */
export async function unlinkKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", keyPattern(prefix), "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== "0");
  return deleted;
}

/** Deletes the catalog topics that exist under the prefix, waits until they are gone, creates the catalog again. */
async function recreateTopics(ctx: CliContext, admin: Admin): Promise<{ deleted: string[]; created: string[] }> {
  const desired = desiredTopics(catalog, replication[ctx.config.topicProfile], ctx.config.topicPrefix);
  const names = new Set(desired.map((t) => t.name));
  const deleted = (await admin.listTopics()).filter((name) => names.has(name)).sort();
  if (deleted.length > 0) {
    await admin.deleteTopics({ topics: deleted, timeout: TOPICS_TIMEOUT_MS });
    await pollUntil("the deleted topics to disappear", async () => !(await admin.listTopics()).some((name) => deleted.includes(name)));
  }
  // A topic the broker has not finished deleting cannot be created yet: apply until it goes through.
  await pollUntil("the topics to be created", async () => {
    await applyTopics(admin, desired);
    return true;
  });
  await waitUntilUsable(admin, [...names]);
  return { deleted, created: [...names].sort() };
}

/** Pauses (or resumes) each service through the admin service; returns those that answered. Never throws, except for a refused token. */
async function setConsumption(ctx: CliContext, pause: boolean): Promise<string[]> {
  const verb = pause ? "pause" : "resume";
  if (findAdminToken(ctx.settings) === undefined) {
    warn(`no admin token (ADMIN_TOKEN or ${ctx.settings.adminTokenFile}): consumers not ${verb}d — restart the services after the reset`);
    return [];
  }
  const done: string[] = [];
  const actor = defaultActor();
  for (const service of pausedServices) {
    try {
      await callAdmin(ctx.settings, async (client) => {
        if (pause) await client.pauseConsumption({ service, actor });
        else await client.resumeConsumption({ service, actor });
      });
      done.push(service);
    } catch (err) {
      const code = adminCode(err);
      if (code === Code.Unavailable) {
        warn(`${messageOf(err)}: consumers not ${verb}d — restart the services after the reset if they run`);
        return done;
      }
      if (code === Code.Unauthenticated || code === Code.PermissionDenied) throw err;
      warn(`could not ${verb} ${service}: ${messageOf(err)}`);
    }
  }
  return done;
}

/** Asks on the terminal; anything but "reset" aborts. */
async function confirm(ctx: CliContext): Promise<void> {
  if (!process.stdin.isTTY) throw new UsageError("reset deletes data: confirm with --yes (stdin is not a terminal to ask on)");
  const prompt = `Type "reset" to delete all orderflow topics' data${ctx.config.topicPrefix ? ` (topic prefix "${ctx.config.topicPrefix}")` : ""} and Redis keys under ${ctx.config.redisKeyPrefix}: `;
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  try {
    if ((await terminal.question(prompt)).trim() !== "reset") throw new Error("reset aborted: nothing was changed");
  } finally {
    terminal.close();
  }
}

/** Runs the reset steps in order; resumes consumption even when a step fails. */
export async function reset(ctx: CliContext, catalogFile?: string): Promise<ResetResult> {
  const paused = await setConsumption(ctx, true);
  try {
    const admin = ctx.kafka.admin();
    await admin.connect();
    let topics: { deleted: string[]; created: string[] };
    try {
      topics = await recreateTopics(ctx, admin);
    } finally {
      await admin.disconnect();
    }
    const redis = createRedis(ctx.config, ctx.log);
    let redisKeysDeleted: number;
    try {
      redisKeysDeleted = await unlinkKeys(redis, ctx.config.redisKeyPrefix);
    } finally {
      redis.disconnect();
    }
    const seeded = await seedStock(ctx, catalogFile);
    return { paused, topicsDeleted: topics.deleted, topicsCreated: topics.created, redisKeysDeleted, catalog: seeded, resumed: paused.length > 0 ? await setConsumption(ctx, false) : [] };
  } catch (err) {
    if (paused.length > 0) await setConsumption(ctx, false);
    throw err;
  }
}

export function resetCommand(context: ContextFactory): Command {
  return new Command("reset")
    .description("delete all data for a clean slate: every catalog topic and DLQ under TOPIC_PREFIX (recreated empty) and the Redis keys under REDIS_KEY_PREFIX, then seed the catalog stock")
    .option("--yes", "do not ask (required when stdin is not a terminal)")
    .option("--catalog <path>", "catalog file to seed from (default: the built-in catalog)")
    .addHelpText(
      "after",
      `
The services' consumers are paused through the admin service (ADMIN_URL, ADMIN_TOKEN) while topics
are deleted and recreated, and resumed afterwards; running services then carry on from the start of
the new, empty topics within about 10 s (their consumers refresh topic metadata that often; a
consumer sees a deleted and recreated topic only then). Restart the services after a reset
(make down && make up) when the admin service did not answer (reset then warns and goes on). A refused admin token stops
reset before anything is deleted.

Example:
  orderflow reset --yes`,
    )
    .action(async (options: { yes?: boolean; catalog?: string }) => {
      const ctx = context();
      if (!options.yes) await confirm(ctx);
      const result = await reset(ctx, options.catalog);
      output(ctx, result, [
        result.paused.length > 0 ? `paused consumption: ${result.paused.join(", ")}` : "consumption not paused",
        `deleted ${result.topicsDeleted.length} topic(s), created ${result.topicsCreated.length}${ctx.config.topicPrefix ? ` under prefix "${ctx.config.topicPrefix}"` : ""}`,
        `deleted ${result.redisKeysDeleted} Redis key(s) under ${ctx.config.redisKeyPrefix}:`,
        seedLine(result.catalog),
        ...(result.resumed.length > 0 ? [`resumed consumption: ${result.resumed.join(", ")}`] : []),
      ]);
    });
}
