/**
 * Metrics and health move with real traffic: the five services in-process on the test broker and
 * Redis (with the mail sink), each with its ops server on a free port. An order that completes and
 * one that is declined show up as saga outcomes by reason, end-to-end latencies, records consumed
 * and produced per topic, a lag gauge per partition and emails sent; then a gateway that keeps
 * failing opens the payment breaker, which the gauge, the handler error and retry counters and
 * the readiness report all say.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startService, type RunningService } from "../../lib/service.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";
import { buildInventory } from "../../services/inventory/service.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { startMailSink, type MailSink } from "../../services/mailsink/sink.ts";
import { buildNotification } from "../../services/notification/service.ts";
import { buildOrchestrator } from "../../services/orchestrator/service.ts";
import { buildOrder } from "../../services/order/service.ts";
import { buildPayment } from "../../services/payment/service.ts";
import { openTestKafka, type TestKafka } from "../harness/kafka.ts";
import { freePort } from "../harness/processes.ts";
import { openTestRedis, type TestRedis } from "../harness/redis.ts";
import { operatorHeaders, testOrderApi } from "../harness/auth.ts";
import { createCatalogTopics, placeOrder, serviceEnv } from "../harness/system.ts";
import { waitFor } from "../harness/wait.ts";

const builders: Record<string, (env: Env) => (runtime: Runtime) => ServiceParts> = {
  inventory: buildInventory,
  payment: buildPayment,
  notification: buildNotification,
  orchestrator: buildOrchestrator,
  order: buildOrder,
};

let t: TestKafka;
let r: TestRedis;
let sink: MailSink;
let apiUrl: string;
const services: Record<string, RunningService> = {};

beforeAll(async () => {
  t = await openTestKafka("metrics");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await new StockStore(r.redis, r.keys).seedCatalog([{ sku: "mouse", name: "Mouse", currency: "USD", priceMinor: 2500n, stock: 100 }]);
  sink = await startMailSink({ dir: mkdtempSync(join(tmpdir(), "metrics-mail-")), smtpPort: 0, httpPort: 0 });
  const httpPort = await freePort();
  apiUrl = `http://127.0.0.1:${httpPort}`;
  const env = serviceEnv(t, r.prefix, {
    OPS_PORT: "0",
    HTTP_PORT: String(httpPort),
    SMTP_URL: `smtp://127.0.0.1:${sink.smtpPort}`,
    GATEWAY_RETRY_INITIAL_MS: "1",
    GATEWAY_RETRY_MAX_MS: "5",
    // Three transient failures in a row open the breaker, and it stays open for the rest of the file.
    GATEWAY_BREAKER_WINDOW: "3",
    GATEWAY_BREAKER_HALF_OPEN_MS: "600000",
    SAGA_TICK_MS: "100",
  });
  for (const [name, build] of Object.entries(builders)) services[name] = await startService(name, build(env), env);
}, 180_000);

afterAll(async () => {
  for (const service of Object.values(services).reverse()) await service.stop();
  await sink?.close();
  await r?.close();
  await t?.close();
});

/** One sample of a Prometheus text exposition. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

async function scrape(service: string): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${services[service].ops.port}/metrics`);
  expect(res.status).toBe(200);
  return (await res.text())
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match === null) throw new Error(`unreadable metrics line: ${line}`);
      const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
      return { name: match[1], labels, value: Number(match[3]) };
    });
}

/** The summed value of `name`'s samples whose labels include `labels`. */
async function value(service: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return (await scrape(service))
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const topic = (base: string) => t.topic(base);

function place(card: string): Promise<string> {
  return placeOrder(testOrderApi(apiUrl), [{ product_id: "mouse", quantity: 1, price: "25.00" }], card);
}

const statusOf = async (id: string) => {
  const res = await fetch(`${apiUrl}/orders/${id}`, { headers: await operatorHeaders() });
  return res.status === 200 ? ((await res.json()) as { status: string }).status : undefined;
};

async function ready(service: string): Promise<{ httpStatus: number; body: { status: string; checks: Record<string, { status: string; detail?: unknown }> } }> {
  const res = await fetch(`http://127.0.0.1:${services[service].ops.port}/health/ready`);
  return { httpStatus: res.status, body: (await res.json()) as { status: string; checks: Record<string, { status: string; detail?: unknown }> } };
}

describe("metrics under traffic", () => {
  it("count a completed and a declined order once each, by reason, with their end-to-end latency", async () => {
    const completed = await place("4242424242424242");
    const declined = await place("4000000000000002");
    await waitFor(async () => (await statusOf(completed)) === "COMPLETED" && (await statusOf(declined)) === "FAILED", { what: "both orders to end" });

    await waitFor(async () => (await value("orchestrator", "orderflow_saga_outcomes_total")) === 2, { what: "two saga outcomes" });
    expect(await value("orchestrator", "orderflow_saga_outcomes_total", { outcome: "completed", reason: "none" })).toBe(1);
    expect(await value("orchestrator", "orderflow_saga_outcomes_total", { outcome: "failed", reason: "payment" })).toBe(1);

    await waitFor(async () => (await value("order", "orderflow_order_e2e_seconds_count")) === 2, { what: "two end-to-end latencies" });
    expect(await value("order", "orderflow_order_e2e_seconds_count", { outcome: "completed" })).toBe(1);
    expect(await value("order", "orderflow_order_e2e_seconds_count", { outcome: "failed" })).toBe(1);
    const seconds = await value("order", "orderflow_order_e2e_seconds_sum");
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(60);
    // Both took less than a minute: the 60 s bucket holds them, the 10 ms one (almost surely) does not.
    expect(await value("order", "orderflow_order_e2e_seconds_bucket", { le: "60" })).toBe(2);

    // Still 2 a while later: the projection's and the orchestrator's redeliveries add nothing.
    await waitFor(async () => (await value("inventory", "orderflow_records_produced_total", { topic: "inventory.committed" })) >= 1, { what: "the stock commit" });
    expect(await value("orchestrator", "orderflow_saga_outcomes_total")).toBe(2);
  });

  it("count records consumed and produced per topic, lag per partition and emails sent", async () => {
    expect(await value("order", "orderflow_records_produced_total", { topic: "orders.created" })).toBe(2);
    expect(await value("orchestrator", "orderflow_records_consumed_total", { topic: topic("orders.created"), outcome: "handled" })).toBe(2);
    // The outputs of consumer transactions count once committed.
    expect(await value("orchestrator", "orderflow_records_produced_total", { topic: topic("orders.validated") })).toBe(2);
    expect(await value("payment", "orderflow_records_produced_total", { topic: "payments.completed" })).toBe(1);
    expect(await value("payment", "orderflow_records_produced_total", { topic: "payments.failed" })).toBe(1);
    await waitFor(async () => (await value("order", "orderflow_records_consumed_total", { topic: topic("orders.completed"), outcome: "handled" })) === 1, { what: "the projection to read orders.completed" });
    expect(await value("orchestrator", "orderflow_handler_seconds_count", { topic: topic("orders.created") })).toBeGreaterThanOrEqual(2);

    const lag = (await scrape("orchestrator")).filter((s) => s.name === "orderflow_consumer_lag");
    const created = lag.filter((s) => s.labels["group"] === topic("orchestrator") && s.labels["topic"] === topic("orders.created"));
    expect(created.length).toBeGreaterThan(0);
    for (const sample of created) {
      expect(sample.labels["partition"]).toMatch(/^\d+$/);
      expect(sample.value).toBeGreaterThanOrEqual(0);
    }

    await waitFor(async () => (await value("notification", "orderflow_emails_total", { result: "sent" })) === 2, { what: "two emails" });
    expect(await value("notification", "orderflow_emails_total", { template: "ORDER_CONFIRMED", result: "sent" })).toBe(1);
    const notification = await ready("notification");
    expect(notification.body.checks["smtp"]).toEqual({ status: "ok", detail: { reachable: true } });
  });

  it("report all services ready and the payment gateway closed while it works", async () => {
    for (const name of Object.keys(services)) {
      const { httpStatus, body } = await ready(name);
      expect({ name, httpStatus, status: body.status }).toEqual({ name, httpStatus: 200, status: "ok" });
    }
    expect((await ready("payment")).body.checks["gateway"]).toEqual({ status: "ok", detail: { breaker: "closed" } });
    expect(await value("payment", "orderflow_circuit_breaker_state", { breaker: "gateway" })).toBe(0);
    expect(await value("payment", "orderflow_handler_errors_total")).toBe(0);
  });

  it("show an open payment breaker in the gauge, the error and retry counters and readiness", async () => {
    await place("4000000000000119");
    await waitFor(async () => (await value("payment", "orderflow_circuit_breaker_state", { breaker: "gateway" })) === 1, { what: "the breaker to open" });
    expect(await value("payment", "orderflow_circuit_breaker_transitions_total", { breaker: "gateway", to: "open" })).toBe(1);

    const { httpStatus, body } = await ready("payment");
    expect(httpStatus).toBe(200);
    expect(body.status).toBe("degraded");
    expect(body.checks["gateway"]).toEqual({ status: "degraded", detail: { breaker: "open" } });

    // The payment command waits: every attempt fails fast with the (retriable) open-breaker error.
    const requested = topic("payments.requested");
    await waitFor(async () => (await value("payment", "orderflow_retries_total", { topic: requested })) >= 2, { what: "retries of the payment command" });
    expect(await value("payment", "orderflow_handler_errors_total", { topic: requested, error_class: "transient" })).toBeGreaterThanOrEqual(2);
    expect(await value("payment", "orderflow_dead_letters_total")).toBe(0);
  });
});
