/**
 * Changes a topic's configs on the broker with Apache Kafka's own ConfigCommand, from the locally
 * cached Kafka jars (the JavaScript client has no AlterConfigs call). Tests and the fault suite
 * use it to make a topic refuse writes (a tiny `max.message.bytes`) and to take that back.
 */
import { execFile } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findKafkaLibs } from "../../lib/kafka/topic-configs.ts";

const run = promisify(execFile);

/** Sets `add` and removes the overrides named in `remove` on each of `topics` (one command per topic: it takes one). */
export async function alterTopicConfigs(brokers: string, topics: readonly string[], change: { add?: Record<string, string>; remove?: readonly string[] }): Promise<void> {
  const cacheDir = process.env["ORDERFLOW_CACHE"] ?? join(homedir(), ".cache", "orderflow");
  const libs = findKafkaLibs(cacheDir);
  if (libs === undefined) throw new Error(`no Kafka jars under ${cacheDir}: run infra/kafka/kafka.sh fetch`);
  const add = Object.entries(change.add ?? {});
  const remove = change.remove ?? [];
  for (const topic of topics) {
    const args = ["-cp", `${libs}/*`, "kafka.admin.ConfigCommand", "--bootstrap-server", brokers, "--alter", "--entity-type", "topics", "--entity-name", topic];
    if (add.length > 0) args.push("--add-config", add.map(([name, value]) => `${name}=${value}`).join(","));
    if (remove.length > 0) args.push("--delete-config", remove.join(","));
    await run("java", args, { maxBuffer: 16 * 1024 * 1024 });
  }
}
