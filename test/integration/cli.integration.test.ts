/**
 * `orderflow topics apply|describe` run in-process against the real broker: exit codes, human and
 * JSON output, idempotence, and drift reported rather than changed.
 */
import { afterEach, beforeEach, describe, expect, inject, it, vi } from "vitest";
import { catalog } from "../../infra/topics.ts";
import { runCli } from "../../services/cli/main.ts";
import { createTopics, openTestKafka, uniquePrefix, type TestKafka } from "../harness/kafka.ts";
import { openTestRedis } from "../harness/redis.ts";

let output: string[];

beforeEach(() => {
  output = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    output.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    output.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = 0;
});

const cli = (prefix: string, ...args: string[]) =>
  runCli(["node", "orderflow", ...args], { KAFKA_BROKERS: inject("kafkaBrokers"), TOPIC_PREFIX: prefix, LOG_LEVEL: "warn", HOME: process.env["HOME"] ?? "" });

describe("orderflow topics", () => {
  it("apply creates the whole catalog once; describe then agrees with it", async () => {
    const prefix = uniquePrefix();
    expect(await cli(prefix, "topics", "apply")).toBe(0);
    expect(output.join("")).toContain(`created ${catalog.length}, already present 0`);

    output = [];
    expect(await cli(prefix, "--json", "topics", "apply")).toBe(0);
    const second = JSON.parse(output.join("")) as { created: string[]; unchanged: string[] };
    expect(second.created).toEqual([]);
    expect(second.unchanged).toHaveLength(catalog.length);

    output = [];
    expect(await cli(prefix, "--json", "topics", "describe")).toBe(0);
    const described = JSON.parse(output.join("")) as { topics: { name: string }[]; missing: string[]; drift: unknown[] };
    expect(described.missing).toEqual([]);
    expect(described.drift).toEqual([]);
    expect(described.topics.map((t) => t.name).sort()).toEqual(catalog.map((t) => `${prefix}${t.name}`).sort());
  });

  describe("against a broker that differs", () => {
    let t: TestKafka;
    beforeEach(async () => {
      t = await openTestKafka("cli");
    });
    afterEach(async () => {
      await t.close();
    });

    it("describe exits 1 and names missing topics, partition drift and config drift", async () => {
      const prefix = t.config.topicPrefix;
      await createTopics(t.admin, [`${prefix}orders.created`], 1);
      await t.admin.createTopics({ topics: [{ topic: `${prefix}orders.failed`, numPartitions: 6, configEntries: [{ name: "retention.ms", value: "1000" }] }] });
      expect(await cli(prefix, "topics", "describe")).toBe(1);
      const text = output.join("");
      expect(text).toMatch(/orders\.created: partitions is 1, catalog says 6/);
      expect(text).toMatch(/orders\.failed: config:retention\.ms is 1000, catalog says 604800000/);
      expect(text).toMatch(/orders\.validated\s+MISSING/);
      expect(text).not.toContain("configs not checked");
    });
  });

  it("seeds, sets, adjusts and reads stock; rebuilds the order read model", async () => {
    const r = await openTestRedis();
    const prefix = uniquePrefix();
    const env = { KAFKA_BROKERS: inject("kafkaBrokers"), REDIS_URL: inject("redisUrl"), REDIS_KEY_PREFIX: r.prefix, TOPIC_PREFIX: prefix, LOG_LEVEL: "warn", HOME: process.env["HOME"] ?? "" };
    const run = (...args: string[]) => runCli(["node", "orderflow", ...args], env);
    try {
      expect(await run("stock", "seed")).toBe(0);
      expect(await run("stock", "seed")).toBe(0);
      expect(output.join("")).toMatch(/stock set for 0 new SKU/);
      expect(await run("stock", "set", "laptop", "7")).toBe(0);
      expect(await run("stock", "adjust", "laptop", "-2")).toBe(0);
      output = [];
      expect(await run("--json", "stock", "get", "laptop")).toBe(0);
      expect(JSON.parse(output.join(""))).toEqual({ levels: [{ sku: "laptop", available: 5, reserved: 0, committed: 0, onHand: 5 }] });
      expect(await run("stock", "adjust", "laptop", "-9")).toBe(1);
      expect(await run("stock", "get", "unicorn")).toBe(1);
      expect(await run("stock", "set", "laptop", "many")).toBe(1);
      output = [];
      expect(await run("stock", "get")).toBe(0);
      expect(output.join("").split("\n").filter((l) => l.includes("available=")).length).toBeGreaterThanOrEqual(7);
      expect(await run("topics", "apply")).toBe(0);
      output = [];
      expect(await run("--json", "orders", "rebuild")).toBe(0);
      expect(JSON.parse(output.join(""))).toEqual({ eventsApplied: 0, orders: 0, carriedOver: 0 });
    } finally {
      await r.close();
    }
  });

  it("answers --help with 0 and a usage error with 2", async () => {
    expect(await cli("", "--help")).toBe(0);
    expect(await cli("", "topics", "frobnicate")).toBe(2);
  });

  it("exits 1 with a clear message on a bad configuration", async () => {
    const code = await runCli(["node", "orderflow", "topics", "apply"], { KAFKA_BROKERS: inject("kafkaBrokers"), ORDERFLOW_ENCODING: "xml" });
    expect(code).toBe(1);
    expect(output.join("")).toMatch(/ORDERFLOW_ENCODING must be one of/);
  });
});
