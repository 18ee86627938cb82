/**
 * The Prometheus config and the Grafana dashboard in infra/ match the code: every orderflow metric a
 * dashboard query names is one the services register (read from their registries, not from a list
 * kept here), every registered orderflow metric is on the dashboard, and Prometheus scrapes the ops
 * port of every process.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMetrics } from "../lib/metrics.ts";
import { createInventoryMetrics } from "../services/inventory/observability.ts";
import { createNotificationMetrics } from "../services/notification/observability.ts";
import { createOrchestratorMetrics } from "../services/orchestrator/observability.ts";
import { createOrderMetrics } from "../services/order/observability.ts";
import { observeBreaker } from "../services/payment/observability.ts";
import { createGatewayPolicy } from "../services/payment/resilience.ts";

const here = dirname(fileURLToPath(import.meta.url));
const read = (path: string) => readFileSync(join(here, path), "utf8");

/** The series names (with histogram suffixes) of every orderflow metric the services register. */
async function registeredSeries(): Promise<{ metrics: Set<string>; series: Map<string, string> }> {
  const { registry } = createMetrics("test");
  createOrderMetrics(registry);
  createInventoryMetrics(registry);
  createOrchestratorMetrics(registry);
  createNotificationMetrics(registry);
  observeBreaker(createGatewayPolicy({ maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 1, timeoutMs: 10, breakerWindow: 1, breakerHalfOpenAfterMs: 10 }), registry);
  const metrics = new Set<string>();
  const series = new Map<string, string>();
  for (const { name, type } of await registry.getMetricsAsJSON()) {
    if (!name.startsWith("orderflow_")) continue;
    metrics.add(name);
    const suffixes = String(type) === "histogram" ? ["_bucket", "_sum", "_count"] : [""];
    for (const suffix of suffixes) series.set(name + suffix, name);
  }
  return { metrics, series };
}

interface Dashboard {
  readonly panels: readonly { readonly title: string; readonly targets: readonly { readonly expr: string }[] }[];
}

const dashboard = JSON.parse(read("grafana/orderflow-dashboard.json")) as Dashboard;
const queries = dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })));
const namesIn = (expr: string) => expr.match(/\borderflow_[a-z0-9_]+/g) ?? [];

describe("Grafana dashboard", () => {
  it("queries only metrics the services register", async () => {
    const { series } = await registeredSeries();
    expect(series.size).toBeGreaterThan(10);
    const unknown = queries.flatMap(({ panel, expr }) => namesIn(expr).filter((name) => !series.has(name)).map((name) => `${panel}: ${name}`));
    expect(unknown).toEqual([]);
  });

  it("shows every orderflow metric the services register", async () => {
    const { metrics, series } = await registeredSeries();
    const shown = new Set(queries.flatMap(({ expr }) => namesIn(expr)).map((name) => series.get(name)));
    expect([...metrics].filter((name) => !shown.has(name))).toEqual([]);
  });

  it("reads its data source from a variable and has no duplicate panel titles", () => {
    const raw = read("grafana/orderflow-dashboard.json");
    expect(raw).toContain('"uid": "${datasource}"');
    const titles = dashboard.panels.map((panel) => panel.title);
    expect(new Set(titles).size).toBe(titles.length);
  });
});

describe("Prometheus config", () => {
  const config = parse(read("prometheus/prometheus.yml")) as {
    scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = config.scrape_configs.flatMap((job) => job.static_configs.flatMap((c) => c.targets));

  it("scrapes the ops ports 9101–9106 on loopback at /metrics", () => {
    expect(targets.sort()).toEqual([9101, 9102, 9103, 9104, 9105, 9106].map((port) => `127.0.0.1:${port}`));
    for (const job of config.scrape_configs) expect(job.metrics_path ?? "/metrics").toBe("/metrics");
  });

  it("covers the ops port of every service that make up starts", () => {
    // infra/services.sh: "name entry ops-port [env…]"; the mail sink has no ops port.
    const started = [...read("services.sh").matchAll(/^\s+"(\w+) services\/\S+ (\d+)(?: [^"]*)?"$/gm)].filter(([, name]) => name !== "mailsink");
    expect(started.map(([, name]) => name)).toEqual(expect.arrayContaining(["order", "payment", "inventory", "notification", "orchestrator", "admin"]));
    for (const [, name, port] of started) expect(targets, `${name}'s port`).toContain(`127.0.0.1:${port}`);
  });
});
