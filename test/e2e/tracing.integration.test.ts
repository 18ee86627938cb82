/**
 * One order is one trace: the five services run as real processes exporting over OTLP to a real
 * Jaeger v2 all-in-one (built once by infra/jaeger.sh), and after an order completes Jaeger's query
 * API returns a single trace holding the API request and spans from every service.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StockStore } from "../../services/inventory/stock.ts";
import { openTestKafka, type TestKafka } from "../harness/kafka.ts";
import { operatorHeaders } from "../harness/auth.ts";
import { serviceNames, startSystem, type RunningSystem } from "../harness/processes.ts";
import { openTestRedis, type TestRedis } from "../harness/redis.ts";
import { createCatalogTopics, placeOrder, serviceEnv } from "../harness/system.ts";
import { waitFor } from "../harness/wait.ts";

const JAEGER = "http://127.0.0.1:16686";

let t: TestKafka;
let r: TestRedis;
let system: RunningSystem;

interface JaegerSpan {
  readonly traceID: string;
  readonly spanID: string;
  readonly operationName: string;
  readonly processID: string;
  readonly tags: readonly { key: string; value: unknown }[];
}
interface JaegerTrace {
  readonly traceID: string;
  readonly spans: readonly JaegerSpan[];
  readonly processes: Readonly<Record<string, { serviceName: string }>>;
}

async function jaeger<T>(path: string): Promise<T> {
  const res = await fetch(`${JAEGER}${path}`);
  if (!res.ok) throw new Error(`jaeger ${path}: ${res.status}`);
  return ((await res.json()) as { data: T }).data;
}

/** The traces Jaeger holds with a span of `service` tagged with the order id. */
const tracesOf = (service: string, orderId: string) =>
  jaeger<JaegerTrace[]>(`/api/traces?service=${service}&tags=${encodeURIComponent(JSON.stringify({ "orderflow.order_id": orderId }))}&lookback=1h&limit=20`);

beforeAll(async () => {
  // Builds Jaeger the first time (minutes); afterwards starts in about a second, or reuses a running one.
  execFileSync("bash", [join(import.meta.dirname, "../../infra/jaeger.sh"), "start"], { stdio: ["ignore", "ignore", "inherit"], timeout: 900_000 });
  t = await openTestKafka("tracing");
  r = await openTestRedis();
  await createCatalogTopics(t);
  await new StockStore(r.redis, r.keys).seedCatalog([{ sku: "lamp", name: "Lamp", currency: "USD", priceMinor: 4500n, stock: 10 }]);
  system = await startSystem(
    serviceEnv(t, r.prefix, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
      // The default keeps one new trace in ten; this test follows one order, so every trace is kept.
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
      // Spans leave each process within half a second instead of five.
      OTEL_BSP_SCHEDULE_DELAY: "500",
    }),
  );
}, 960_000);

afterAll(async () => {
  await system?.stop();
  await r?.close();
  await t?.close();
});

describe("tracing into Jaeger", () => {
  it("a completed order is a single trace with spans from all five services", async () => {
    const orderId = await placeOrder(system.api, [{ product_id: "lamp", quantity: 1, price: "45.00" }]);
    await waitFor(async () => ((await (await fetch(`${system.apiUrl}/orders/${orderId}`, { headers: await operatorHeaders() })).json()) as { status: string }).status === "COMPLETED", {
      what: "the order to complete",
    });

    // Every service's spans for the order, once all five have exported theirs.
    const found = await waitFor(
      async () => {
        const perService = await Promise.all(serviceNames.map((service) => tracesOf(service, orderId)));
        return perService.every((traces) => traces.length > 0) ? perService.flat() : undefined;
      },
      { timeoutMs: 30_000, what: "spans of all five services in Jaeger" },
    );

    const traceIds = new Set(found.map((trace) => trace.traceID));
    expect([...traceIds]).toHaveLength(1);
    const [traceId] = [...traceIds];
    const [whole] = await jaeger<JaegerTrace[]>(`/api/traces/${traceId}`);
    const services = new Set(Object.values(whole?.processes ?? {}).map((p) => p.serviceName));
    for (const service of serviceNames) expect(services).toContain(service);
    const operations = new Set(whole?.spans.map((s) => s.operationName));
    expect(operations).toContain("POST /orders");
    for (const topic of ["orders.created", "payments.requested", "inventory.reserved", "notifications.email", "orders.completed"]) {
      expect([...operations].some((op) => op.startsWith("process ") && op.endsWith(topic))).toBe(true);
    }
    const orchestrator = Object.entries(whole?.processes ?? {}).find(([, p]) => p.serviceName === "orchestrator")?.[0];
    const processSpan = whole?.spans.find((s) => s.processID === orchestrator && s.operationName.startsWith("process ") && s.operationName.endsWith("orders.created"));
    const tags = Object.fromEntries(processSpan?.tags.map((tag) => [tag.key, tag.value]) ?? []);
    expect(tags).toMatchObject({ "messaging.system": "kafka", "messaging.operation.type": "process", "orderflow.order_id": orderId, "orderflow.outcome": "handled" });
    expect(tags["messaging.consumer.group.name"]).toMatch(/orchestrator/);
  });
});
