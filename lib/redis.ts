/**
 * Redis access: one ioredis connection per process and key naming under a prefix. Atomic
 * multi-key changes are Lua scripts registered with `defineCommand`, which sends EVALSHA and falls
 * back to EVAL when the server answers NOSCRIPT (after a restart or SCRIPT FLUSH).
 */
import { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";

export type { Redis } from "ioredis";

/** Builds keys under one prefix: keys("stock", "laptop") → "of:stock:laptop". */
export type Keys = (...parts: readonly string[]) => string;

export function keyspace(prefix: string): Keys {
  return (...parts) => [prefix, ...parts].join(":");
}

/** How long a command may wait for its answer when the caller's config does not say (REDIS_COMMAND_TIMEOUT_MS). */
const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/**
 * A connection that retries forever with capped backoff and fails commands fast while down — and
 * while up but not answering (a stalled server): a command unanswered within the command timeout
 * fails as an outage, which handlers wait out. Commands are idempotent or scripts that check their
 * own state, so one that ran after its caller gave up changes nothing when tried again.
 * Commands issued in the same event-loop turn (by records handled concurrently) leave in one write.
 */
export function createRedis(config: Pick<Config, "redisUrl"> & Partial<Pick<Config, "redisCommandTimeoutMs">>, log: Logger): Redis {
  const redis = new Redis(config.redisUrl, {
    commandTimeout: config.redisCommandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
  });
  redis.on("error", (err: Error) => log.warn({ err: err.message }, "redis connection error"));
  return redis;
}
