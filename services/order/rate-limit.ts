/**
 * The per-client limit on placing orders, shared by every order instance: a fixed window per token
 * subject counted in Redis by one Lua script (one round trip: count, start the window's expiry on
 * its first order, report the time left). Over the limit the caller is told when to come back.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { OrderApiAuthConfig } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Keys, Redis } from "../../lib/redis.ts";

/** KEYS[1] the subject's window; ARGV[1] its length in ms. Returns { orders in the window, ms left }. */
const takeScript = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return { count, left }
`;

type LimitedRedis = Redis & { takeOrderAllowance(key: string, windowMs: number): Promise<[number, number]> };

/** ResourceExhausted with Retry-After (seconds) in its metadata: REST answers 429, Connect resource_exhausted. */
export class RateLimitedError extends ConnectError {
  constructor(readonly retryAfterS: number, limit: number, windowS: number) {
    super(`too many orders: at most ${limit} per ${windowS} s per client; retry after ${retryAfterS} s`, Code.ResourceExhausted, { "retry-after": String(retryAfterS) });
  }
}

export interface PlaceLimiter {
  /** Counts one order of `subject`; throws RateLimitedError past the limit. */
  take(subject: string): Promise<void>;
}

/**
 * The limiter over the process's Redis. When Redis cannot answer it lets the order through (and
 * logs): the limit protects capacity, and refusing every order while Redis is away would turn a
 * degraded dependency into an outage of the API.
 */
export function createPlaceLimiter(redis: Redis, keys: Keys, limit: OrderApiAuthConfig["placeLimit"], log: Logger): PlaceLimiter {
  if (!("takeOrderAllowance" in redis)) redis.defineCommand("takeOrderAllowance", { numberOfKeys: 1, lua: takeScript });
  const limited = redis as LimitedRedis;
  return {
    async take(subject) {
      let count: number;
      let leftMs: number;
      try {
        [count, leftMs] = await limited.takeOrderAllowance(keys("ratelimit", "place-order", subject), limit.windowMs);
      } catch (err) {
        log.warn({ err: messageOf(err) }, "the order rate limit could not be counted; the order is let through");
        return;
      }
      if (count > limit.orders) throw new RateLimitedError(Math.max(1, Math.ceil(leftMs / 1000)), limit.orders, limit.windowMs / 1000);
    },
  };
}
