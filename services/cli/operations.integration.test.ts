/**
 * The operators' commands against real services run in-process on the test broker and Redis (order,
 * orchestrator, payment, inventory and the admin process, on this file's own topic and key prefix):
 * orders place/get/watch, load, generate, dlq list/replay, monitor, reset — and the real binary once.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { catalog } from "../../infra/topics.ts";
import { OrderCreatedSchema, type OrderCreated } from "../../gen/orderflow/v1/events_pb.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { freePort } from "../../test/harness/processes.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { testAuth } from "../../test/harness/auth.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildAdmin } from "../admin/service.ts";
import { loadCatalog } from "../inventory/catalog.ts";
import { buildInventory } from "../inventory/service.ts";
import { StockStore } from "../inventory/stock.ts";
import { buildOrchestrator } from "../orchestrator/service.ts";
import { buildOrder } from "../order/service.ts";
import { buildPayment } from "../payment/service.ts";
import { runCli } from "./main.ts";
import type { Snapshot } from "./monitor.ts";
import { testCards } from "./samples.ts";

const execFileAsync = promisify(execFile);
const TOKEN = `token-${randomUUID()}`;

let t: TestKafka;
let r: TestRedis;
let services: RunningService[] = [];
let watch: Awaited<ReturnType<typeof watchTopics>>;
let env: Record<string, string>;
let stdout: string[];
let stderr: string[];

/** Starts a service in-process and keeps it for afterAll. */
async function start(name: string, build: Parameters<typeof startService>[1], serviceEnvironment: Record<string, string>): Promise<void> {
  services.push(await startService(name, build, serviceEnvironment));
}

beforeAll(async () => {
  t = await openTestKafka("cli-ops");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await new StockStore(r.redis, r.keys).seedCatalog(loadCatalog());
  const apiPort = await freePort();
  let adminPort = 0;
  const base = serviceEnv(t, r.prefix, { HTTP_PORT: String(apiPort), ADMIN_PORT: "0", ADMIN_TOKEN: TOKEN, SAGA_TICK_MS: "100" });
  await start("inventory", buildInventory(base), base);
  await start("payment", buildPayment(base), base);
  await start("orchestrator", buildOrchestrator(base), base);
  await start("order", buildOrder(base), base);
  await start("admin", buildAdmin(base, (port) => (adminPort = port)), base);
  watch = await watchTopics(t, ["orders.created"]);
  env = {
    ...base,
    LOG_LEVEL: "warn",
    ORDER_API_URL: `http://127.0.0.1:${apiPort}`,
    ADMIN_URL: `http://127.0.0.1:${adminPort}`,
    ADMIN_TOKEN_FILE: `/nonexistent/${randomUUID()}`,
    ORDER_API_SIGNING_KEY_FILE: testAuth().privateKeyFile,
  };
}, 180_000);

afterAll(async () => {
  await watch?.close();
  for (const service of services.reverse()) await service.stop();
  services = [];
  await r?.close();
  await t?.close();
});

beforeEach(() => {
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = 0;
});

/** Runs the CLI in-process with this file's environment (plus `extra`); the exit code. */
const cli = (args: readonly string[], extra: Record<string, string> = {}) => runCli(["node", "orderflow", ...args], { ...env, ...extra });
/** What the last commands wrote to stdout, and clears it. */
const out = () => stdout.splice(0).join("");
/** Each line of stdout as JSON (the --json stream of watch), and clears it. */
const jsonLines = () =>
  out()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("orders", () => {
  it("place prints the id; watch follows it to COMPLETED and exits 0; get shows it with its history", async () => {
    expect(await cli(["orders", "place", "--item", "mouse:2", "--customer", "c-cli"])).toBe(0);
    const orderId = out().trim();
    expect(orderId).toMatch(/^[0-9a-f-]{36}$/);

    expect(await cli(["orders", "watch", orderId, "--timeout", "60"])).toBe(0);
    const watched = out();
    // Watch starts from the order's current view (which may already be past PENDING) and its history so far.
    expect(watched).toMatch(new RegExp(`order ${orderId} COMPLETED\n(.+\n)*$`));
    expect(watched).toMatch(/orders\.created\s+order placed/);
    expect(watched.indexOf("order placed")).toBeLessThan(watched.indexOf("order completed"));

    expect(await cli(["--json", "orders", "get", orderId])).toBe(0);
    const { order, events } = JSON.parse(out()) as { order: { status: string; customer_id: string; total: string; items: unknown[] }; events: { topic: string }[] };
    expect(order).toMatchObject({ status: "COMPLETED", customer_id: "c-cli", total: "50.00", items: [{ product_id: "mouse", quantity: 2, price: "25.00" }] });
    expect(events.map((e) => e.topic)).toEqual(expect.arrayContaining(["orders.created", "orders.validated", "orders.completed"]));
  });

  it("place --watch of a declined card streams JSON lines and exits 1 with FAILED (PAYMENT)", async () => {
    expect(await cli(["--json", "orders", "place", "--card", testCards.declined, "--watch", "--timeout", "60"])).toBe(1);
    const lines = jsonLines();
    const orderId = lines[0]?.["order_id"];
    expect(lines[0]).toMatchObject({ status: "PENDING", replayed: false });
    expect(lines.filter((l) => l["type"] === "event").length).toBeGreaterThanOrEqual(2);
    const statuses = lines.filter((l) => l["type"] === "status");
    expect(statuses.at(-1)).toMatchObject({ order_id: orderId, status: "FAILED", failure_reason: "PAYMENT" });
  });

  it("says clearly what is wrong: an unknown product, an unknown order, an API that is down, a timeout", async () => {
    expect(await cli(["orders", "place", "--item", "unicorn:1"])).toBe(1);
    expect(stderr.join("")).toMatch(/unknown product "unicorn"/);
    expect(await cli(["orders", "get", randomUUID()])).toBe(1);
    expect(stderr.join("")).toMatch(/answered 404: order .* not found/);
    expect(await cli(["orders", "watch", randomUUID(), "--timeout", "1"])).toBe(1);
    expect(stderr.join("")).toMatch(/order .* not found/);
    const closed = `http://127.0.0.1:${await freePort()}`;
    expect(await cli(["orders", "place"], { ORDER_API_URL: closed })).toBe(1);
    expect(stderr.join("")).toContain(`the order API at ${closed} is unreachable`);
  });

  it("the real binary: `node services/cli/orderflow.mjs` reads an order as JSON and exits 2 on a usage error", async () => {
    const bin = new URL("./orderflow.mjs", import.meta.url).pathname;
    const childEnv = { ...env, PATH: process.env["PATH"] ?? "" };
    const placed = await execFileAsync("node", [bin, "orders", "place", "--item", "keyboard:1"], { env: childEnv });
    const orderId = placed.stdout.trim();
    const got = await execFileAsync("node", [bin, "--json", "orders", "get", orderId], { env: childEnv });
    expect((JSON.parse(got.stdout) as { order: { order_id: string; items: { product_id: string }[] } }).order).toMatchObject({ order_id: orderId, items: [{ product_id: "keyboard" }] });
    const usage = await execFileAsync("node", [bin, "orders", "place", "--item", "keyboard"], { env: childEnv }).catch((err: { code: number; stderr: string }) => err);
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringContaining("--item must be") as unknown });
  });
});

describe("consumption", () => {
  it("pauses and resumes a service through the admin service; its readiness says so", async () => {
    const orderOps = services.find((s) => s.runtime.config.service === "order")?.ops.port;
    const ready = async () => (await (await fetch(`http://127.0.0.1:${orderOps}/health/ready`)).json()) as { status: string };
    expect(await cli(["--json", "consumption", "pause", "order", "--actor", "ada"])).toBe(0);
    expect(JSON.parse(out())).toEqual({ service: "order", paused: true });
    await waitFor(async () => (await ready()).status === "degraded", { what: "the order service to say it is paused" });
    expect(await cli(["consumption", "resume", "order"])).toBe(0);
    expect(out()).toMatch(/order: consumption running/);
    await waitFor(async () => (await ready()).status === "ok", { what: "the order service to run again" });
    expect(await cli(["consumption", "pause", "nobody"])).toBe(1);
  });
});

describe("load", () => {
  it("sends on an open-loop schedule and measures every order to its end on the terminal topics", async () => {
    const report = `${r.prefix}-load.json`.replace(/[^\w.-]/g, "_");
    const path = `${process.env["TMPDIR"] ?? "/tmp"}/${report}`;
    expect(await cli(["--json", "load", "--rate", "20", "--duration", "2", "--skus", "mouse,keyboard", "--declined-share", "0.2", "--drain", "60", "--report", path])).toBe(0);
    const { mode, result } = JSON.parse(out()) as { mode: string; result: { sent: number; accepted: number; unfinished: number; ended: Record<string, number>; reasons: Record<string, number>; latencyMs: { count: number; p50: number; max: number } } };
    expect(mode).toBe("rate");
    expect(result).toMatchObject({ sent: 40, accepted: 40, unfinished: 0 });
    expect(Object.values(result.ended).reduce((a, b) => a + b, 0)).toBe(40);
    expect(result.latencyMs.count).toBe(40);
    expect(result.latencyMs.p50).toBeGreaterThan(0);
    expect(result.ended["completed"], JSON.stringify(result)).toBeGreaterThan(0);
    expect(Object.keys(result.reasons).every((reason) => reason === "PAYMENT")).toBe(true);
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ mode: "rate", result: { accepted: 40 } });
  }, 120_000);

  it("refuses a load it cannot run", async () => {
    expect(await cli(["load"])).toBe(2);
    expect(await cli(["load", "--rate", "10", "--declined-share", "2"])).toBe(2);
  });
});

describe("generate", () => {
  it("places N orders at the rate asked; exactly N land on orders.created", async () => {
    const count = 12;
    const generated = () => watch.seen.filter((s) => s.topic === "orders.created" && (s.record.message as unknown as OrderCreated).customerId.startsWith("gen-"));
    expect(await cli(["--json", "generate", "--rate", "20", "--count", String(count), "--declined-share", "1"])).toBe(0);
    const result = JSON.parse(out()) as { placed: number; accepted: number; rejected: number; seconds: number };
    expect(result).toMatchObject({ placed: count, accepted: count, rejected: 0 });
    // 12 orders at 20/s: the last one goes out 11/20 s after the first.
    expect(result.seconds).toBeGreaterThanOrEqual(0.5);
    await waitFor(() => generated().length >= count, { what: `${count} generated orders on orders.created` });
    expect(generated()).toHaveLength(count);
    expect(new Set(generated().map((s) => (s.record.message as unknown as OrderCreated).payment?.cardLast4))).toEqual(new Set(["0002"]));
  });
});

describe("dead letters through the AdminService", () => {
  it("list shows a poison record of payments.requested; replay sends it back (it comes back dead again)", async () => {
    const publisher: Publisher = await createPublisher(t.kafka, t.config);
    try {
      await publisher.send(t.topic("payments.requested"), { key: `poison-${randomUUID()}`, value: Buffer.from([0xde, 0xad]), headers: { "event-type": "orderflow.v1.Nonsense" } });
    } finally {
      await publisher.disconnect();
    }
    type Listed = { dead_letters: { dlq_topic: string; partition: number; offset: string; origin_topic: string; origin_offset: string; error_class: string }[] };
    const list = async (): Promise<Listed["dead_letters"]> => {
      expect(await cli(["--json", "dlq", "list", "payments.requested"])).toBe(0);
      return (JSON.parse(out()) as Listed).dead_letters;
    };
    const [first] = await waitFor(async () => ((await list()).length >= 1 ? list() : undefined), { what: "the dead letter" });
    expect(first).toMatchObject({ origin_topic: "payments.requested", error_class: expect.stringMatching(/^poison\./) as unknown });

    expect(await cli(["dlq", "list"])).toBe(0);
    expect(out()).toContain(`payments.requested.dlq ${first?.partition}@${first?.offset}  poison.`);

    expect(await cli(["--json", "dlq", "replay", "payments.requested", "--offset", first?.offset ?? "", "--actor", "cli-test"])).toBe(0);
    expect(JSON.parse(out())).toMatchObject({ replayed: 1 });
    const again = await waitFor(async () => {
      const letters = await list();
      return letters.length >= 2 ? letters : undefined;
    }, { what: "the replayed record to be dead-lettered again" });
    expect(Number(again[1]?.origin_offset)).toBeGreaterThan(Number(first?.origin_offset));
  });

  it("maps a refused token, a missing token and an unreachable admin to clear messages (exit 1)", async () => {
    expect(await cli(["dlq", "list"], { ADMIN_TOKEN: "wrong" })).toBe(1);
    expect(stderr.splice(0).join("")).toContain("admin token refused — set ADMIN_TOKEN or run make up");
    expect(await cli(["dlq", "list"], { ADMIN_TOKEN: "" })).toBe(1);
    expect(stderr.splice(0).join("")).toMatch(/no admin token: ADMIN_TOKEN is not set and \/nonexistent\/.* does not exist/);
    expect(await cli(["dlq", "list"], { ADMIN_URL: `http://127.0.0.1:${await freePort()}` })).toBe(1);
    expect(stderr.splice(0).join("")).toMatch(/admin service at .* is unreachable/);
  });
});

describe("monitor", () => {
  it("--once prints the admin's snapshot (JSON and human); live mode redraws; unreachable exits 1", async () => {
    const snapshot = await waitFor(async () => {
      expect(await cli(["--json", "monitor", "--once"])).toBe(0);
      const s = JSON.parse(out()) as Snapshot;
      return s.totals.completed >= 1 && s.totals.failed >= 1 ? s : undefined;
    }, { what: "the snapshot to count the orders placed", timeoutMs: 60_000 });
    expect(snapshot.totals.failedByReason["PAYMENT"]).toBeGreaterThanOrEqual(1);
    expect(snapshot.latencyMs.count).toBeGreaterThanOrEqual(1);

    expect(await cli(["monitor", "--once"])).toBe(0);
    const text = out();
    expect(text).toMatch(/totals \(\d+ s\)\s+created \d+/);
    expect(text).toMatch(/payment breaker\s+\S+/);

    expect(await cli(["monitor", "--iterations", "2", "--interval", "100"])).toBe(0);
    expect(out().match(/orderflow monitor — /g)).toHaveLength(2);

    expect(await cli(["monitor", "--once"], { ADMIN_URL: `http://127.0.0.1:${await freePort()}` })).toBe(1);
    expect(stderr.join("")).toMatch(/admin service at .* is unreachable/);
  });
});

describe("reset", () => {
  let t2: TestKafka;
  let r2: TestRedis;
  let admin2: RunningService | undefined;
  let resetEnv: Record<string, string>;

  beforeAll(async () => {
    t2 = await openTestKafka("cli-reset");
    r2 = await openTestRedis();
    await createCatalogTopics(t2);
    // Topic creation returns before the broker lists every new topic; reset deletes what is listed.
    await waitFor(async () => {
      const listed = new Set(await t2.admin.listTopics());
      return catalog.every((c) => listed.has(t2.topic(c.name)));
    }, { what: "every catalog topic to be listed" });
    let port = 0;
    const base = serviceEnv(t2, r2.prefix, { ADMIN_PORT: "0", ADMIN_TOKEN: TOKEN });
    admin2 = await startService("admin", buildAdmin(base, (p) => (port = p)), base);
    resetEnv = { ...base, LOG_LEVEL: "warn", ADMIN_URL: `http://127.0.0.1:${port}`, ADMIN_TOKEN_FILE: `/nonexistent/${randomUUID()}` };
  }, 120_000);

  afterAll(async () => {
    await admin2?.stop();
    await r2?.close();
    await t2?.close();
  });

  const ends = async (topic: string) => (await t2.admin.fetchTopicOffsets(t2.topic(topic))).reduce((sum, p) => sum + Number(p.high), 0);

  it("refuses without --yes when stdin is not a terminal (exit 2) and changes nothing", async () => {
    await r2.redis.set(r2.keys("keep-me"), "1");
    const tty = Object.getOwnPropertyDescriptor(process.stdin, "isTTY");
    Object.defineProperty(process.stdin, "isTTY", { value: false, configurable: true });
    try {
      expect(await cli(["reset"], resetEnv)).toBe(2);
    } finally {
      if (tty === undefined) delete (process.stdin as { isTTY?: boolean }).isTTY;
      else Object.defineProperty(process.stdin, "isTTY", tty);
    }
    expect(stderr.join("")).toMatch(/confirm with --yes/);
    expect(await r2.redis.get(r2.keys("keep-me"))).toBe("1");
  });

  it("--yes pauses the services, empties every catalog topic and this prefix's keys only, seeds stock, resumes", async () => {
    const publisher = await createPublisher(t2.kafka, t2.config);
    try {
      const orderId = randomUUID();
      await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { orderId });
    } finally {
      await publisher.disconnect();
    }
    expect(await ends("orders.created")).toBe(1);
    await r2.redis.set(r2.keys("order", "x"), "1");
    const neighbour = `${r2.prefix}x:order:x`; // shares the prefix's first characters, not the prefix
    await r2.redis.set(neighbour, "1");
    await r.redis.set(r.keys("other-installation"), "1");

    expect(await cli(["--json", "reset", "--yes"], resetEnv)).toBe(0);
    const result = JSON.parse(out()) as { paused: string[]; resumed: string[]; topicsDeleted: string[]; topicsCreated: string[]; redisKeysDeleted: number; catalog: { products: number; stocked: number } };
    expect(result.paused).toEqual(["order", "payment", "inventory", "notification", "orchestrator"]);
    expect(result.resumed).toEqual(result.paused);
    expect(result.topicsDeleted).toHaveLength(catalog.length);
    expect(result.topicsCreated.sort()).toEqual(catalog.map((c) => t2.topic(c.name)).sort());
    expect(result.redisKeysDeleted).toBeGreaterThanOrEqual(1);
    expect(result.catalog.stocked).toBe(loadCatalog().length);

    expect(await ends("orders.created")).toBe(0);
    expect(await r2.redis.exists(r2.keys("order", "x"))).toBe(0);
    expect(await r2.redis.exists(r2.keys("control", "paused"))).toBe(0);
    expect(await r2.redis.get(neighbour)).toBe("1");
    expect(await r.redis.get(r.keys("other-installation"))).toBe("1");
    expect(await r2.redis.hget(r2.keys("stock", "laptop"), "available")).toBe("50");
    await r2.redis.unlink(neighbour);
  });

  it("without an admin service it warns, still resets, and says consumption was not paused", async () => {
    expect(await cli(["reset", "--yes"], { ...resetEnv, ADMIN_URL: `http://127.0.0.1:${await freePort()}` })).toBe(0);
    expect(stderr.join("")).toMatch(/warning: the admin service at .* is unreachable .*consumers not paused/);
    expect(out()).toMatch(/consumption not paused\ndeleted \d+ topic\(s\), created \d+/);
  });
});

describe("reset of the running system", () => {
  it("pauses the services, wipes their data, resumes them — and the next order completes", async () => {
    expect(await cli(["orders", "place", "--item", "monitor:1"])).toBe(0);
    const before = out().trim();
    expect(await cli(["orders", "watch", before])).toBe(0);
    out();

    expect(await cli(["--json", "reset", "--yes"])).toBe(0);
    const result = JSON.parse(out()) as { paused: string[]; resumed: string[]; redisKeysDeleted: number };
    expect(result.resumed).toEqual(["order", "payment", "inventory", "notification", "orchestrator"]);
    expect(result.redisKeysDeleted).toBeGreaterThan(0);
    expect(await cli(["orders", "get", before])).toBe(1);
    expect(stderr.join("")).toMatch(/answered 404/);

    // The consumers see the recreated topics at their next metadata refresh (10 s).
    expect(await cli(["orders", "place", "--item", "monitor:1", "--watch", "--timeout", "120"])).toBe(0);
    expect(out()).toMatch(/COMPLETED/);
  }, 300_000);
});
