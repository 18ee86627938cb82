/**
 * Operator control of consumption across processes, through Redis. The hash
 * `<prefix>:control:paused` (field = service name, value = when it was paused) is the truth; a
 * message on the channel `<prefix>:control` (the service name) tells every process to look again at
 * once. A process reads the hash at start, on every notice and after every reconnect, so a notice
 * missed while Redis was away changes nothing: the next read sees the hash as it is.
 */
import type { Config } from "./config.ts";
import { messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { HealthCheck } from "./ops-server.ts";
import { createRedis, keyspace, type Keys, type Redis } from "./redis.ts";

/** The hash of paused services. */
const pausedKey = (keys: Keys) => keys("control", "paused");
/** The channel that announces a change. */
const channelOf = (keys: Keys) => keys("control");

/** Pauses (or resumes) the consumers of every process of `service`, and tells them at once. */
export async function setConsumptionPaused(redis: Redis, keys: Keys, service: string, paused: boolean, now = new Date()): Promise<void> {
  if (paused) await redis.hset(pausedKey(keys), service, now.toISOString());
  else await redis.hdel(pausedKey(keys), service);
  await redis.publish(channelOf(keys), service);
}

/** True while an operator has `service`'s consumption paused. */
export async function isConsumptionPaused(redis: Redis, keys: Keys, service: string): Promise<boolean> {
  return (await redis.hexists(pausedKey(keys), service)) === 1;
}

/** A running watch of one service's pause flag. */
export interface PauseWatch {
  /** The state last applied. */
  readonly paused: boolean;
  /** Stops watching; no onChange after it resolves. */
  close(): Promise<void>;
}

/**
 * Watches `service`'s pause flag and calls `onChange` whenever it differs from the state last
 * applied (which starts as "not paused"), the first time before this resolves. `redis` is a normal
 * connection for reading; the subscription gets its own connection from `config`. A failed read is
 * logged and retried on the next notice or reconnect; it never throws into the caller.
 */
export async function watchPauses(
  deps: { readonly config: Pick<Config, "redisUrl" | "redisKeyPrefix">; readonly redis: Redis; readonly log: Logger },
  service: string,
  onChange: (paused: boolean) => void,
): Promise<PauseWatch> {
  const { config, redis, log } = deps;
  const keys = keyspace(config.redisKeyPrefix);
  const subscriber = createRedis(config, log);
  let paused = false;
  let closed = false;
  let queue = Promise.resolve();

  // Reads are chained, so two notices in a row cannot apply their answers out of order.
  const sync = () => {
    queue = queue
      .then(async () => {
        const now = await isConsumptionPaused(redis, keys, service);
        if (closed || now === paused) return;
        paused = now;
        onChange(now);
      })
      .catch((err: unknown) => log.warn({ err: messageOf(err) }, "could not read the consumption pause flag"));
    return queue;
  };

  subscriber.on("message", (_channel: string, message: string) => {
    if (message === service) void sync();
  });
  // After a reconnect (ioredis subscribes again by itself), a notice may have been missed.
  subscriber.on("ready", () => void sync());
  try {
    await subscriber.subscribe(channelOf(keys));
  } catch (err) {
    log.warn({ err: messageOf(err) }, "could not subscribe to operator control; retrying in the background");
  }
  await sync();

  return {
    get paused() {
      return paused;
    },
    async close() {
      closed = true;
      subscriber.disconnect();
      await queue;
    },
  };
}

/** Readiness says "degraded" while the watched service's consumption is paused. */
export function pauseCheck(watch: Pick<PauseWatch, "paused">): HealthCheck {
  return {
    name: "control",
    check: () => (watch.paused ? { status: "degraded", detail: "consumption paused by an operator" } : { status: "ok" }),
  };
}
