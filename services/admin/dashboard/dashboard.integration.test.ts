/**
 * The dashboard against the whole system: the five services as real processes on a test prefix,
 * the dashboard in-process behind a small HTTP server of this test's own, and a real headless
 * Chromium that loads the page, watches orders flow and opens an order's timeline.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startService, type RunningService } from "../../../lib/service.ts";
import { StockStore } from "../../inventory/stock.ts";
import { openTestKafka, type TestKafka } from "../../../test/harness/kafka.ts";
import { startSystem, type RunningSystem } from "../../../test/harness/processes.ts";
import { openTestRedis, type TestRedis } from "../../../test/harness/redis.ts";
import { createCatalogTopics, placeOrder, serviceEnv } from "../../../test/harness/system.ts";
import { waitFor } from "../../../test/harness/wait.ts";
import { dlqTopics, watchedGroups } from "./broker.ts";
import { createDashboard, type Dashboard } from "./dashboard.ts";
import type { Snapshot, Timeline } from "./snapshot.ts";

const CHROMIUM = "/usr/bin/chromium";
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const screenshot = join(root, "test", "artifacts", "dashboard.png");
const hasChromium = existsSync(CHROMIUM);

let t: TestKafka;
let r: TestRedis;
let system: RunningSystem;
let admin: RunningService;
let dashboard: Dashboard;
let server: Server;
let base: string;

beforeAll(async () => {
  t = await openTestKafka("dashboard");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await new StockStore(r.redis, r.keys).seedCatalog([
    { sku: "laptop", name: "Laptop", currency: "USD", priceMinor: 99999n, stock: 100 },
    { sku: "mouse", name: "Mouse", currency: "USD", priceMinor: 2500n, stock: 500 },
  ]);
  system = await startSystem(serviceEnv(t, r.prefix, { GATEWAY_LATENCY_MS: "50" }));
  const watched = Object.entries(system.opsUrls).map(([name, url]) => `${name}=${new URL(url).port}`).join(",");
  const env = serviceEnv(t, r.prefix, { DASHBOARD_SERVICES: watched, DASHBOARD_REFRESH_MS: "500" });
  admin = await startService("admin", (runtime) => {
    dashboard = createDashboard(runtime, env);
    return { start: () => dashboard.start(), stop: () => dashboard.stop() };
  }, env);
  server = createServer((req, res) => {
    void dashboard.handle(req, res).then((answered) => {
      if (answered) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("outside the dashboard");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 180_000);

afterAll(async () => {
  if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  await admin?.stop();
  await system?.stop();
  await r?.close();
  await t?.close();
});

function place(card = "4242424242424242"): Promise<string> {
  return placeOrder(system.api, [{ product_id: "mouse", quantity: 1, price: "25.00" }], card);
}

async function snapshot(): Promise<Snapshot> {
  return (await (await fetch(`${base}/dashboard/api/snapshot`)).json()) as Snapshot;
}

/** A GET with the path sent exactly as written (fetch would normalise dot segments away). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request({ host: url.hostname, port: url.port, path, method: "GET" }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("dashboard HTTP", () => {
  it("serves the page and its assets with their content types, and nothing else from disk", async () => {
    for (const [path, type] of [["/dashboard", "text/html"], ["/dashboard/", "text/html"], ["/dashboard/app.js", "text/javascript"], ["/dashboard/style.css", "text/css"]] as const) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toContain(type);
      expect(res.headers.get("content-security-policy"), path).toContain("default-src 'self'");
      expect((await res.text()).length, path).toBeGreaterThan(100);
    }
    for (const path of ["/dashboard/index.html", "/dashboard/assets/app.js", "/dashboard/..%2f..%2f..%2fpackage.json", "/dashboard/%2e%2e/%2e%2e/%2e%2e/package.json", "/dashboard/../../package.json"]) {
      const res = await rawGet(path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).not.toContain('"name": "orderflow"');
    }
    expect((await rawGet("/elsewhere")).body).toBe("outside the dashboard");
    expect((await fetch(`${base}/dashboard/api/snapshot`, { method: "POST" })).status).toBe(405);
  });

  it("answers 400 for an order id that is not a UUID and 404 for an unknown one", async () => {
    const bad = await fetch(`${base}/dashboard/api/orders/not-a-uuid`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: "the order id must be a UUID" });
    expect((await fetch(`${base}/dashboard/api/orders/${randomUUID()}`)).status).toBe(404);
  });

  it("reports throughput, latency, lag of every group, DLQ sizes, health and the breaker", async () => {
    const orderId = await place();
    const declined = await place("4000000000000002");
    const filled = await waitFor(async () => {
      const s = await snapshot();
      const ended = s.latestOrders.filter((o) => [orderId, declined].includes(o.orderId) && ["COMPLETED", "FAILED"].includes(o.status));
      return ended.length === 2 && s.totals.completed >= 1 && s.totals.failed >= 1 && s.latencyMs.count >= 2 && s.services.every((x) => x.status === "ok") && s;
    }, { timeoutMs: 60_000, what: "both orders to end and show in the snapshot" });
    expect(filled.windowSeconds).toBe(60);
    expect(filled.throughput).toHaveLength(60);
    expect(filled.throughput.reduce((sum, s) => sum + s.created, 0)).toBeGreaterThanOrEqual(2);
    expect(filled.totals.failedByReason["PAYMENT"]).toBeGreaterThanOrEqual(1);
    expect(filled.latestOrders.find((o) => o.orderId === declined)).toMatchObject({ status: "FAILED", failureReason: "PAYMENT", total: "25.00", currency: "USD" });
    expect(filled.latencyMs.p50).toBeGreaterThan(0);
    expect(filled.latencyMs.max).toBeGreaterThanOrEqual(filled.latencyMs.p99);
    expect(filled.latencyMs.p99).toBeGreaterThanOrEqual(filled.latencyMs.p50);
    expect(Object.keys(filled.lagByGroup).sort()).toEqual([...watchedGroups].sort());
    expect(filled.services.map((s) => s.name).sort()).toEqual([...system.processes].sort());
    expect(["closed", "open", "half-open", "unknown"]).toContain(filled.breaker.state);
    expect(filled.dlq.map((d) => d.topic)).toEqual(dlqTopics);
    expect(filled.stale).toEqual([]);
    // Lag is read from the broker: the orchestrator's group has committed on orders.created by now,
    // with names shown without the test's topic prefix.
    const orchestratorLag = await waitFor(async () => {
      const rows = (await snapshot()).lag.filter((l) => l.group === "orchestrator" && l.topic === "orders.created");
      return rows.length > 0 && rows;
    }, { what: "orchestrator lag rows" });
    expect(orchestratorLag.every((l) => l.lag >= 0 && !l.topic.startsWith(t.config.topicPrefix))).toBe(true);
    const timeline = (await (await fetch(`${base}/dashboard/api/orders/${declined}`)).json()) as Timeline;
    expect(timeline.order.status).toBe("FAILED");
    expect(timeline.events.map((e) => e.topic)).toEqual(expect.arrayContaining(["orders.created", "orders.validated", "orders.failed"]));
  });

  it("shows no lag once the system is idle: the commit markers ending transactional partitions are not counted", async () => {
    const orderId = await place();
    await waitFor(async () => (await snapshot()).latestOrders.find((o) => o.orderId === orderId)?.status === "COMPLETED", { timeoutMs: 30_000, what: "the order to complete" });
    // Every group has committed on its topics (lag rows present), so these are real zeros, not missing rows.
    const idle = await waitFor(async () => {
      const s = await snapshot();
      return watchedGroups.every((group) => s.lag.some((l) => l.group === group)) && Object.values(s.lagByGroup).every((lag) => lag === 0) && s;
    }, { timeoutMs: 30_000, what: "every group to have committed and its lag to reach 0" });
    expect(idle.lag.every((l) => l.lag === 0)).toBe(true);
  });
});

describe.skipIf(!hasChromium)(`dashboard in a real browser${hasChromium ? "" : ` (skipped: no Chromium at ${CHROMIUM})`}`, () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it("updates live as orders complete and opens an order's timeline", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const consoleErrors: string[] = [];
    const failed: string[] = [];
    const external: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    page.on("request", (req) => {
      const url = new URL(req.url());
      if (url.protocol !== "data:" && url.hostname !== "127.0.0.1" && url.hostname !== "localhost") external.push(req.url());
    });
    page.on("requestfailed", (req) => failed.push(`${req.url()}: ${req.failure()?.errorText ?? ""}`));
    page.on("response", (res) => {
      if (res.status() >= 400) failed.push(`${res.url()}: ${res.status()}`);
    });

    await page.goto(`${base}/dashboard`);
    const completed = () => page.textContent("#total-completed").then(Number);
    await page.locator("#total-completed", { hasText: /^\d+$/ }).waitFor({ timeout: 15_000 });
    const before = await completed();

    const placed = [await place(), await place(), await place()];
    await waitFor(async () => (await completed()) >= before + placed.length, { timeoutMs: 60_000, what: "the page's completed count to rise by the orders placed" });
    const last = placed.at(-1) ?? "";
    const row = page.locator(`#orders tr[data-order-id="${last}"]`);
    await row.filter({ hasText: "COMPLETED" }).waitFor({ timeout: 30_000 });
    expect(await page.locator("#chart polyline").count()).toBe(4);
    expect(await page.locator("#chart polyline.completed").getAttribute("points")).toMatch(/^(\d+(\.\d+)?,\d+(\.\d+)? ){59}\d/);
    await page.locator("#services li.ok").first().waitFor({ timeout: 10_000 });
    expect(await page.isHidden("#stale")).toBe(true);

    await row.getByRole("button", { name: last }).click();
    await page.locator('#timeline-events tr[data-topic="orders.completed"]').waitFor({ timeout: 15_000 });
    expect(await page.textContent("#timeline-id")).toBe(last);
    expect(await page.textContent("#timeline-events")).toContain("order completed");
    expect(await page.textContent("#timeline-saga")).toContain("saga: COMPLETED");

    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(20_000);

    expect(consoleErrors).toEqual([]);
    expect(failed).toEqual([]);
    expect(external).toEqual([]);
    await page.close();
  });
});

// Last: it leaves the notification service killed.
describe("dashboard when a service stops", () => {
  it("shows a service that stops answering as down, and the others still ok", async () => {
    await system.stopService("notification", true);
    const s = await waitFor(async () => {
      const current = await snapshot();
      return current.services.find((x) => x.name === "notification")?.status === "down" && current;
    }, { timeoutMs: 20_000, what: "notification to show as down" });
    expect(s.services.find((x) => x.name === "notification")?.detail).toBeTruthy();
    expect(s.services.filter((x) => x.name !== "notification").every((x) => x.status === "ok")).toBe(true);
  });
});
