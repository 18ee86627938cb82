/**
 * Global setup of the integration project: finds or starts the broker and Redis the tests use.
 * KAFKA_BROKERS / REDIS_URL are reused when given. KAFKA_PROVIDER=testcontainers starts both in
 * Docker (needs a Docker engine). Otherwise a broker and Redis already running (make up) are reused,
 * or the local Apache Kafka (infra/kafka/kafka.sh) and the OS redis-server (infra/redis.sh) are
 * started with a throwaway state under .run/test/ and wiped at the end (ORDERFLOW_KEEP_INFRA=1 keeps
 * them running for the next run).
 */
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import type {} from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
    /** True when the local scripts run the broker, so tests may also start the 3-node cluster. */
    localKafka: boolean;
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** State of a broker the tests start themselves: thrown away at the end, so topics never pile up. */
const testState = join(root, ".run", "test");

function script(path: string, args: readonly string[], state?: string): string {
  return execFileSync("bash", [join(root, path), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: state === undefined ? process.env : { ...process.env, ORDERFLOW_STATE: state },
  });
}

function running(path: string, args: readonly string[]): boolean {
  try {
    script(path, args);
    return true;
  } catch {
    return false;
  }
}

async function startTestcontainers(project: TestProject): Promise<() => Promise<void>> {
  const { KafkaContainer } = await import("@testcontainers/kafka");
  const { GenericContainer, Wait } = await import("testcontainers");
  const kafka = await new KafkaContainer("apache/kafka:4.3.1").withKraft().start();
  const redis = await new GenericContainer("redis:7.4-alpine")
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage("Ready to accept connections"))
    .start();
  project.provide("kafkaBrokers", `${kafka.getHost()}:${kafka.getMappedPort(9093)}`);
  project.provide("redisUrl", `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`);
  project.provide("localKafka", false);
  return async () => {
    await kafka.stop();
    await redis.stop();
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env["KAFKA_PROVIDER"] === "testcontainers") return startTestcontainers(project);

  const cleanups: (() => void)[] = [];
  const keep = process.env["ORDERFLOW_KEEP_INFRA"] === "1";

  const brokers = process.env["KAFKA_BROKERS"];
  if (brokers !== undefined && brokers !== "") {
    project.provide("kafkaBrokers", brokers);
    project.provide("localKafka", false);
  } else {
    // A broker already running (make up) is reused; otherwise a throwaway one is started.
    const state = running("infra/kafka/kafka.sh", ["status"]) ? undefined : testState;
    script("infra/kafka/kafka.sh", ["start", "single"], state);
    if (state !== undefined && !keep) cleanups.push(() => script("infra/kafka/kafka.sh", ["wipe", "single"], state));
    project.provide("kafkaBrokers", script("infra/kafka/kafka.sh", ["bootstrap", "single"]).trim());
    project.provide("localKafka", true);
  }

  const redisUrl = process.env["REDIS_URL"];
  if (redisUrl !== undefined && redisUrl !== "") {
    project.provide("redisUrl", redisUrl);
  } else {
    const state = running("infra/redis.sh", ["status"]) ? undefined : testState;
    script("infra/redis.sh", ["start"], state);
    if (state !== undefined && !keep) cleanups.push(() => script("infra/redis.sh", ["stop"], state));
    project.provide("redisUrl", `redis://127.0.0.1:${process.env["REDIS_PORT"] ?? "6379"}`);
  }

  return () => {
    for (const cleanup of cleanups.reverse()) cleanup();
    return Promise.resolve();
  };
}
