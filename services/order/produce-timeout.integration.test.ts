/**
 * A produce that times out at the client but is written anyway, through the real order service and
 * a real broker: the test's own broker (so that it can be frozen without touching anyone else's) is
 * SIGSTOPped while POST /orders publishes, for longer than the delivery timeout; the API answers
 * 503, the broker is thawed and writes the ProduceRequest that waited in its socket, and the client
 * retries with the same Idempotency-Key. Exactly one order id may be on orders.created for the key,
 * and it is the one the retry is answered with.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema, type OrderCreated } from "../../gen/orderflow/v1/events_pb.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { startService, type RunningService } from "../../lib/service.ts";
import { freePort } from "../../test/harness/processes.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { createCatalogTopics, serviceEnv } from "../../test/harness/system.ts";
import { testAuth } from "../../test/harness/auth.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildOrder } from "./service.ts";

/** The test's own broker: ports shifted away from the shared broker's and the fault suite's. */
const PORT_OFFSET = 2200;
const state = join(process.cwd(), ".run", `produce-timeout-${randomUUID().slice(0, 8)}`);
const kafkaSh = (...args: string[]) =>
  execFileSync("bash", [join(import.meta.dirname, "..", "..", "infra", "kafka", "kafka.sh"), ...args], {
    encoding: "utf8",
    env: { ...process.env, ORDERFLOW_STATE: state, KAFKA_PORT_OFFSET: String(PORT_OFFSET) },
    stdio: ["ignore", "pipe", "inherit"],
  });
const signalBroker = (signal: "SIGSTOP" | "SIGCONT") => process.kill(Number(readFileSync(join(state, "kafka-single", "kafka.pid"), "utf8").trim()), signal);

const DELIVERY_TIMEOUT_MS = 3000;

let t: TestKafka;
let r: TestRedis;
let service: RunningService;
let api: string;

beforeAll(async () => {
  kafkaSh("start", "single");
  const brokers = kafkaSh("bootstrap", "single").trim();
  t = await openTestKafka("produce-timeout-test", { KAFKA_BROKERS: brokers });
  r = await openTestRedis();
  await createCatalogTopics(t);
  const port = await freePort();
  const env = serviceEnv(t, r.prefix, { KAFKA_BROKERS: brokers, KAFKA_DELIVERY_TIMEOUT_MS: String(DELIVERY_TIMEOUT_MS), IDEMPOTENCY_LEASE_MS: "4000", HTTP_PORT: String(port) });
  service = await startService("order", buildOrder(env), env);
  api = `http://127.0.0.1:${port}`;
}, 180_000);

afterAll(async () => {
  await service?.stop();
  await r?.close();
  await t?.close();
  kafkaSh("wipe", "single");
  rmSync(state, { recursive: true, force: true });
}, 60_000);

const body = {
  customer_id: "c-timeout",
  customer_email: "ada@example.com",
  currency: "USD",
  items: [{ product_id: "laptop", quantity: 1, price: "999.99" }],
  payment: { method: "card", card_number: "4242424242424242" },
};

const post = async (key: string) =>
  fetch(`${api}/orders`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key, authorization: `Bearer ${await testAuth().credentials.forCustomer(body.customer_id)}` }, body: JSON.stringify(body) });

/** Every orders.created record placed with `key`, up to the topic's current end. */
async function createdWith(key: string): Promise<OrderCreated[]> {
  const found: OrderCreated[] = [];
  await readToEnd(t.config, t.admin, [t.topic("orders.created")], (record) => {
    const created = decodeUnlessPoison(record, [OrderCreatedSchema])?.message;
    if (created?.idempotencyKey === key) found.push(created);
  }, 60_000);
  return found;
}

describe("a publish that times out at the client but is written", () => {
  it("is retried under the key's order id: one order on orders.created, the same id answered", async () => {
    // The producer is connected and knows the partition leaders before the freeze.
    expect((await post(randomUUID())).status).toBe(202);
    const key = randomUUID();
    signalBroker("SIGSTOP");
    let first: Response;
    try {
      first = await post(key);
    } finally {
      signalBroker("SIGCONT");
    }
    expect(first.status, await first.clone().text()).toBe(503);
    const retried = await waitFor(async () => {
      const res = await post(key);
      return res.status === 202 ? ((await res.json()) as { order_id: string }) : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250, what: "the retry to be accepted" });
    const created = await createdWith(key);
    expect(new Set(created.map((c) => c.orderId))).toEqual(new Set([retried.order_id]));
    // The frozen attempt's record was written too (the case this test is about), under the same id.
    expect(created).toHaveLength(2);
    const again = await post(key);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { order_id: string }).order_id).toBe(retried.order_id);
  }, 120_000);
});
