/** Integration-test helpers over the real Redis: a connection and a key prefix no other test uses. */
import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { Redis } from "ioredis";
import { keyspace, type Keys } from "../../lib/redis.ts";

export interface TestRedis {
  readonly redis: Redis;
  readonly prefix: string;
  readonly keys: Keys;
  /** Deletes this test's keys and disconnects. */
  close(): Promise<void>;
}

export async function openTestRedis(): Promise<TestRedis> {
  const redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 2 });
  await redis.ping();
  const prefix = `t-${randomUUID().slice(0, 8)}`;
  return {
    redis,
    prefix,
    keys: keyspace(prefix),
    async close() {
      let cursor = "0";
      do {
        const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
        cursor = next;
        if (found.length > 0) await redis.del(...found);
      } while (cursor !== "0");
      redis.disconnect();
    },
  };
}
