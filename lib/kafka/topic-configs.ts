/**
 * Topic configs as the broker holds them, read with Apache Kafka's own TopicCommand from the
 * locally cached Kafka jars: the JavaScript client has no DescribeConfigs call. When no jars are
 * cached (a machine that only talks to a remote cluster), configs are reported as not checked.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The newest complete Kafka jar folder under the cache, or undefined. */
export function findKafkaLibs(cacheDir: string): string | undefined {
  if (!existsSync(cacheDir)) return undefined;
  const candidates = readdirSync(cacheDir)
    .filter((name) => name.startsWith("kafka-") && existsSync(join(cacheDir, name, ".complete")))
    .sort()
    .reverse();
  return candidates[0] === undefined ? undefined : join(cacheDir, candidates[0], "libs");
}

/** Parses TopicCommand --describe output into topic → overridden configs. */
export function parseTopicDescribe(output: string): Map<string, Record<string, string>> {
  const configs = new Map<string, Record<string, string>>();
  for (const line of output.split("\n")) {
    const topic = /^Topic:\s*(\S+)\s+TopicId:/.exec(line)?.[1];
    if (topic === undefined) continue;
    const entries = /\tConfigs:\s*(.*)$/.exec(line)?.[1] ?? "";
    const values: Record<string, string> = {};
    for (const pair of entries.split(",")) {
      const at = pair.indexOf("=");
      if (at > 0) values[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    configs.set(topic, values);
  }
  return configs;
}

/** Configs of every topic on the cluster, or undefined when Kafka's tools are not available. */
export async function describeTopicConfigs(libs: string | undefined, brokers: string): Promise<Map<string, Record<string, string>> | undefined> {
  if (libs === undefined) return undefined;
  const { stdout } = await run(
    "java",
    ["-cp", `${libs}/*`, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers, "--describe", "--exclude-internal"],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return parseTopicDescribe(stdout);
}
