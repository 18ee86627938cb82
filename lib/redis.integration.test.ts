/**
 * A stalled Redis (the process stopped with SIGSTOP: connected, answering nothing) must not hang
 * the commands of a service: each fails within the command timeout as an outage, which handlers
 * wait out, and commands work again once Redis goes on. Runs its own redis-server, so that
 * stopping it disturbs no other test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { isOutage } from "./errors.ts";
import { createLogger } from "./log.ts";
import { createRedis } from "./redis.ts";
import { freePort } from "../test/harness/processes.ts";
import { waitFor } from "../test/harness/wait.ts";

let server: ChildProcess;
let url: string;

beforeAll(async () => {
  const port = await freePort();
  url = `redis://127.0.0.1:${port}`;
  server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => undefined);
  await waitFor(() => probe.connect().then(() => true, () => false), { what: "the test's redis-server to answer" });
  probe.disconnect();
});

afterAll(() => {
  server.kill("SIGCONT");
  server.kill("SIGKILL");
});

describe("a stalled Redis", () => {
  it("fails each command within the command timeout as an outage, and serves again once it goes on", async () => {
    const redis = createRedis({ redisUrl: url, redisCommandTimeoutMs: 300 }, createLogger("redis-test", "silent"));
    try {
      await redis.set("k", "v");
      server.kill("SIGSTOP");
      const started = performance.now();
      const failure = await redis.get("k").then(() => undefined, (err: unknown) => err);
      const waited = performance.now() - started;
      expect(failure).toBeInstanceOf(Error);
      expect(isOutage(failure)).toBe(true);
      expect(waited).toBeLessThan(2000);
      server.kill("SIGCONT");
      expect(await waitFor(() => redis.get("k").catch(() => undefined), { what: "Redis to answer again" })).toBe("v");
    } finally {
      server.kill("SIGCONT");
      redis.disconnect();
    }
  });
});
