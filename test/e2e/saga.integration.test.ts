/**
 * End to end with real processes (five services and the mail sink), the real broker and Redis:
 * the seed's three scenarios, cancel before and after completion, idempotency keys, an order
 * published twice on orders.created (a retried publish), redelivered records, the last units under concurrent orders, reservation expiry, and a corrupt record on
 * every consumed topic.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { sagaTopics, unconsumedTopics } from "../../infra/topics.ts";
import { ReleaseReason, type InventoryReleased } from "../../gen/orderflow/v1/events_pb.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { DlqHeaders } from "../../lib/kafka/dlq.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { headerValue } from "../../lib/codec/envelope.ts";
import { runCli } from "../../services/cli/main.ts";
import { bearer } from "../../services/cli/tokens.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { operatorHeaders } from "../harness/auth.ts";
import { openTestKafka, readRecords, type TestKafka } from "../harness/kafka.ts";
import { startSystem, type RunningSystem } from "../harness/processes.ts";
import { openTestRedis, type TestRedis } from "../harness/redis.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../harness/system.ts";
import { waitFor } from "../harness/wait.ts";

let t: TestKafka;
let r: TestRedis;
let system: RunningSystem;
let stock: StockStore;
let publisher: Publisher;

interface RestOrder {
  order_id: string;
  status: string;
  failure_reason?: string;
  refunded: boolean;
}

beforeAll(async () => {
  t = await openTestKafka("e2e");
  r = await openTestRedis();
  await createCatalogTopics(t);
  stock = new StockStore(r.redis, r.keys);
  await stock.seedCatalog([
    { sku: "laptop", name: "Laptop", currency: "USD", priceMinor: 99999n, stock: 50 },
    { sku: "mouse", name: "Mouse", currency: "USD", priceMinor: 2500n, stock: 200 },
    { sku: "rare_item", name: "Rare", currency: "USD", priceMinor: 9999n, stock: 1 },
    { sku: "keyboard", name: "Keyboard", currency: "USD", priceMinor: 8999n, stock: 10 },
    { sku: "last_units", name: "Last units", currency: "USD", priceMinor: 1000n, stock: 3 },
    // Only the expiry test touches it, so no other order's stock moves while it measures.
    { sku: "cable", name: "Cable", currency: "USD", priceMinor: 500n, stock: 20 },
  ]);
  publisher = await createPublisher(t.kafka, t.config);
  system = await startSystem(
    serviceEnv(t, r.prefix, {
      GATEWAY_LATENCY_MS: "150",
      SAGA_STEP_TIMEOUT_MS: "4000",
      SAGA_TICK_MS: "100",
      // Shorter than the step timeout, so that a payment that does not answer meets the expiry first.
      RESERVATION_TTL_MS: "3000",
      KAFKA_CONSUMER_SESSION_TIMEOUT_MS: "6000",
    }),
  );
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await publisher?.disconnect();
  await r?.close();
  await t?.close();
});

const body = (items: { product_id: string; quantity: number; price: string }[], card = "4242424242424242", customer = `c-${randomUUID().slice(0, 8)}`) => ({
  customer_id: customer,
  customer_email: "shopper@example.com",
  currency: "USD",
  items,
  payment: { method: "card", card_number: card },
});

/** Placed as the order's customer, with its token. */
async function place(order: ReturnType<typeof body>, headers: Record<string, string> = {}): Promise<string> {
  const auth = bearer(await system.credentials.forCustomer(order.customer_id));
  const res = await fetch(`${system.apiUrl}/orders`, { method: "POST", headers: { "content-type": "application/json", ...auth, ...headers }, body: JSON.stringify(order) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { order_id: string }).order_id;
}

async function order(id: string): Promise<RestOrder | undefined> {
  const res = await fetch(`${system.apiUrl}/orders/${id}`, { headers: await operatorHeaders() });
  return res.status === 200 ? ((await res.json()) as RestOrder) : undefined;
}

const terminal = (id: string, timeoutMs = 20_000) =>
  waitFor(async () => {
    const o = await order(id);
    return o !== undefined && ["COMPLETED", "FAILED", "CANCELLED"].includes(o.status) ? o : undefined;
  }, { timeoutMs, what: `order ${id} to end` });

const mailsFor = async (id: string) =>
  ((await (await fetch(`${system.mailUrl}/messages`)).json()) as { messages: { subject: string }[] }).messages.filter((m) => m.subject.includes(id.slice(0, 8)));

const available = async (sku: string) => (await stock.getStock(sku))!;

describe("the seed's scenarios", () => {
  it("happy path: two items, paid, reserved, confirmed by email, completed", async () => {
    const before = await available("laptop");
    const id = await place(body([{ product_id: "laptop", quantity: 1, price: "999.99" }, { product_id: "mouse", quantity: 1, price: "25.00" }]));
    expect((await terminal(id)).status).toBe("COMPLETED");
    await waitFor(async () => (await available("laptop")).committed === before.committed + 1, { what: "the commit" });
    expect((await available("laptop")).available).toBe(before.available - 1);
    await waitFor(async () => (await mailsFor(id)).length === 1, { what: "the confirmation email" });
    expect((await mailsFor(id))[0]?.subject).toMatch(/confirmed/);
  });

  it("payment failure: stock released, failure email, FAILED(PAYMENT)", async () => {
    const before = await available("mouse");
    const id = await place(body([{ product_id: "mouse", quantity: 2, price: "25.00" }], "4000000000000002"));
    const done = await terminal(id);
    expect(done).toMatchObject({ status: "FAILED", failure_reason: "PAYMENT" });
    await waitFor(async () => (await available("mouse")).available === before.available && (await available("mouse")).reserved === before.reserved, { what: "the stock to come back" });
    await waitFor(async () => (await mailsFor(id)).some((m) => /payment failed/.test(m.subject)), { what: "the failure email" });
  });

  it("inventory shortage: charge refunded, customer told, FAILED(INVENTORY)", async () => {
    const id = await place(body([{ product_id: "rare_item", quantity: 5, price: "99.99" }]));
    expect(await terminal(id)).toMatchObject({ status: "FAILED", failure_reason: "INVENTORY" });
    await waitFor(async () => (await order(id))?.refunded === true, { what: "the refund" });
    expect(await r.redis.hget(r.keys("payment", id), "state")).toBe("refunded");
    await waitFor(async () => (await mailsFor(id)).some((m) => /out of stock/.test(m.subject)), { what: "the out-of-stock email" });
    expect((await available("rare_item")).available).toBe(1);
  });
});

describe("make demo", () => {
  it("runs the three scenarios and each ends as the seed says", async () => {
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });
    try {
      expect(await runCli(["node", "orderflow", "--json", "demo", "--api", system.apiUrl], { LOG_LEVEL: "warn", ORDER_API_SIGNING_KEY_FILE: system.signingKeyFile })).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const { results } = JSON.parse(printed.join("")) as { results: { ok: boolean; status: string; events: { summary: string }[] }[] };
    expect(results.map((x) => [x.ok, x.status])).toEqual([[true, "COMPLETED"], [true, "FAILED"], [true, "FAILED"]]);
    for (const x of results as unknown as { orderId: string }[]) await waitFor(async () => (await mailsFor(x.orderId)).length > 0, { what: "the scenario's email" });
  });
});

describe("cancel", () => {
  it("before completion: compensated, CANCELLED, nothing kept", async () => {
    const before = await available("mouse");
    const id = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    await waitFor(() => order(id), { what: "the order to be readable" });
    const cancel = { method: "POST", headers: { "content-type": "application/json", ...(await operatorHeaders()) }, body: JSON.stringify({ reason: "changed my mind" }) };
    expect((await fetch(`${system.apiUrl}/orders/${id}/cancel`, cancel)).status).toBe(202);
    expect((await terminal(id)).status).toBe("CANCELLED");
    await waitFor(async () => {
      const level = await available("mouse");
      return level.available === before.available && level.reserved === before.reserved && level.committed === before.committed;
    }, { what: "the stock to be back" });
    await waitFor(async () => ["refunded", undefined, null].includes(await r.redis.hget(r.keys("payment", id), "state")), { what: "no charge kept" });
  });

  it("after completion: refunded", async () => {
    const id = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    expect((await terminal(id)).status).toBe("COMPLETED");
    expect((await fetch(`${system.apiUrl}/orders/${id}/cancel`, { method: "POST", headers: await operatorHeaders() })).status).toBe(202);
    await waitFor(async () => {
      const o = await order(id);
      return o?.status === "CANCELLED" && o.refunded;
    }, { what: "CANCELLED and refunded" });
    await waitFor(async () => (await mailsFor(id)).some((m) => /refunded/.test(m.subject)), { what: "the refund email" });
    expect((await fetch(`${system.apiUrl}/orders/${id}/cancel`, { method: "POST", headers: await operatorHeaders() })).status).toBe(409);
  });
});

describe("exactly one effect", () => {
  it("the same Idempotency-Key twice makes one order", async () => {
    const customer = `c-${randomUUID().slice(0, 8)}`;
    const key = randomUUID();
    const order1 = body([{ product_id: "mouse", quantity: 1, price: "25.00" }], undefined, customer);
    const [a, b] = await Promise.all([place(order1, { "idempotency-key": key }), place(order1, { "idempotency-key": key }).catch(() => undefined)]);
    const again = await place(order1, { "idempotency-key": key });
    expect(again).toBe(a);
    if (b !== undefined) expect(b).toBe(a);
    await terminal(a);
    const asCustomer = bearer(await system.credentials.forCustomer(customer));
    const listed = (await (await fetch(`${system.apiUrl}/orders?customer_id=${customer}`, { headers: asCustomer })).json()) as { orders: unknown[] };
    expect(listed.orders).toHaveLength(1);
  });

  it("an order on orders.created again (a retried publish, same or new event id) runs one saga: one reservation, one charge, one email, one outcome", async () => {
    const watch = await watchTopics(t, ["orders.created", "orders.validated", "payments.requested", "orders.completed"]);
    const before = await available("laptop");
    const id = await place(body([{ product_id: "laptop", quantity: 1, price: "999.99" }]), { "idempotency-key": randomUUID() });
    const { schema, message, envelope } = await watch.next(id, "orders.created");
    // What a retry under the key's binding publishes (the same event id), and a copy under a new event id.
    const copies = [
      encodeRecord(schema, message, { key: id, orderId: id, producer: "order", encoding: "binary", eventId: envelope.eventId, occurredAt: envelope.occurredAt }),
      encodeRecord(schema, message, { key: id, orderId: id, producer: "order", encoding: "binary" }),
    ];
    const deliveries = [];
    for (const copy of copies) deliveries.push(await publisher.send(t.topic("orders.created"), copy));
    expect((await terminal(id)).status).toBe("COMPLETED");
    // The orchestrator has consumed both copies once its committed position passed the last one.
    const last = deliveries.at(-1)!;
    await waitFor(async () => {
      const [committed] = await t.fetchOffsets({ groupId: topicName(t.config, "orchestrator"), topics: [t.topic("orders.created")] });
      const position = committed?.partitions.find((p) => p.partition === last.partition)?.offset ?? "-1";
      return BigInt(position) > BigInt(last.offset);
    }, { what: "the orchestrator to consume both copies" });
    expect(watch.of(id, "orders.created")).toHaveLength(3);
    expect(watch.of(id, "orders.validated")).toHaveLength(1);
    expect(watch.of(id, "payments.requested")).toHaveLength(1);
    expect(watch.of(id, "orders.completed")).toHaveLength(1);
    const level = await available("laptop");
    expect(level.available).toBe(before.available - 1);
    await waitFor(async () => (await mailsFor(id)).length > 0, { what: "the confirmation email" });
    expect(await mailsFor(id)).toHaveLength(1);
    const { events } = (await (await fetch(`${system.apiUrl}/orders/${id}/events`, { headers: await operatorHeaders() })).json()) as { events: { topic: string }[] };
    expect(events.filter((e) => e.topic === "orders.created")).toHaveLength(1);
    await watch.close();
  });

  it("a redelivered record has no second effect: one reservation, one charge, one email", async () => {
    const watch = await watchTopics(t, ["orders.validated", "payments.requested", "payments.completed", "orders.completed"]);
    const before = await available("laptop");
    const id = await place(body([{ product_id: "laptop", quantity: 1, price: "999.99" }]));
    expect((await terminal(id)).status).toBe("COMPLETED");
    await watch.next(id, "orders.completed");
    for (const topic of ["orders.validated", "payments.requested"]) {
      const [record] = await waitFor(() => (watch.of(id, topic).length > 0 ? watch.of(id, topic) : undefined), { what: `${topic} of the order` });
      const { schema, message, envelope } = record;
      // The same record again — same event id, same content — as a redelivery would bring it.
      await publisher.send(t.topic(topic), encodeRecord(schema, message, { key: id, orderId: id, producer: envelope.producer, encoding: "binary", eventId: envelope.eventId, occurredAt: envelope.occurredAt }));
    }
    await waitFor(() => watch.of(id, "payments.completed").length === 2, { what: "the replayed charge answer" });
    const payments = watch.of(id, "payments.completed").map((x) => (x.message as unknown as { paymentId: string }).paymentId);
    expect(new Set(payments).size).toBe(1);
    expect(watch.of(id, "orders.completed")).toHaveLength(1);
    const level = await available("laptop");
    expect(level.available).toBe(before.available - 1);
    expect(level.reserved + level.committed).toBe(before.reserved + before.committed + 1);
    await waitFor(async () => (await mailsFor(id)).length > 0, { what: "the confirmation email" });
    expect(await mailsFor(id)).toHaveLength(1);
    await watch.close();
  });

  it("N units and M > N concurrent orders: exactly N complete and stock ends at 0", async () => {
    const ids = await Promise.all(Array.from({ length: 8 }, () => place(body([{ product_id: "last_units", quantity: 1, price: "10.00" }]))));
    const outcomes = await Promise.all(ids.map((id) => terminal(id, 30_000)));
    expect(outcomes.filter((o) => o.status === "COMPLETED")).toHaveLength(3);
    expect(outcomes.filter((o) => o.status === "FAILED").every((o) => o.failure_reason === "INVENTORY")).toBe(true);
    await waitFor(async () => (await available("last_units")).committed === 3, { what: "three commits" });
    expect(await available("last_units")).toMatchObject({ available: 0, reserved: 0, committed: 3, onHand: 3 });
    expect(await stock.checkConservation()).toEqual([]);
  });
});

describe("failures", () => {
  it("the saga survives the orchestrator being killed and restarted", async () => {
    expect(await system.stopService("orchestrator", true)).toBeNull();
    const id = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    await waitFor(() => order(id), { what: "the order to be accepted while the orchestrator is down" });
    expect((await order(id))?.status).toBe("PENDING");
    await system.startService("orchestrator");
    // The killed member leaves the group only when its session times out (6 s here).
    expect((await terminal(id, 40_000)).status).toBe("COMPLETED");
    expect(await system.stopService("orchestrator")).toBe(0);
    await system.startService("orchestrator");
    const next = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    expect((await terminal(next)).status).toBe("COMPLETED");
  });

  it("a reservation whose payment does not answer expires: the order fails, its units go back on sale, the late charge is refunded", async () => {
    const before = await available("cable");
    const watch = await watchTopics(t, ["inventory.reserved", "inventory.released", "payments.refunded"]);
    expect(await system.stopService("payment")).toBe(0);
    let id: string;
    try {
      id = await place(body([{ product_id: "cable", quantity: 4, price: "5.00" }]));
      await watch.next(id, "inventory.reserved");
      expect((await available("cable")).reserved).toBe(before.reserved + 4);
      const released = await watch.next(id, "inventory.released", 20_000);
      expect((released.message as unknown as InventoryReleased).reason).toBe(ReleaseReason.EXPIRED);
      const ended = await terminal(id);
      expect([ended.status, ended.failure_reason]).toEqual(["FAILED", "TIMEOUT"]);
      expect(await available("cable")).toEqual(before);
    } finally {
      await system.startService("payment");
    }
    // The charge request waited for the payment service; charged now, it is refunded: the order failed.
    await watch.next(id, "payments.refunded", 40_000);
    await watch.close();
  });

  it("a corrupt record on every consumed topic goes to its DLQ and the system keeps serving", async () => {
    const consumed = sagaTopics.map((s) => s.name).filter((name) => !unconsumedTopics.has(name));
    for (const topic of consumed) {
      await publisher.send(t.topic(topic), { key: randomUUID(), value: Buffer.from([0xde, 0xad, 0xbe, 0xef]), headers: { "event-type": "orderflow.v1.Nonsense" } });
    }
    for (const topic of consumed) {
      const [dead] = await readRecords(t, t.topic(`${topic}.dlq`), 1, 30_000);
      expect(headerValue(dead?.headers, DlqHeaders.errorClass), topic).toMatch(/^poison\./);
    }
    const id = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    expect((await terminal(id)).status).toBe("COMPLETED");
  });
});

describe("invariants after everything above", () => {
  const check = async () => {
    const env = { KAFKA_BROKERS: t.config.kafka.brokers, TOPIC_PREFIX: t.config.topicPrefix, REDIS_URL: inject("redisUrl"), REDIS_KEY_PREFIX: r.prefix, LOG_LEVEL: "warn" };
    const printed: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });
    try {
      const code = await runCli(["node", "orderflow", "--json", "check", "--mailsink", system.mailUrl], env);
      return { code, report: JSON.parse(printed.join("")) as { ok: boolean; accepted: number; charges: number; emails: number; violations: Record<string, string[]> } };
    } finally {
      spy.mockRestore();
    }
  };

  it("every order reached one outcome, one charge each, every unkept charge refunded, one email each, stock conserved", async () => {
    // Quiescence: compensations of the last orders may still be in flight for a moment.
    const { code, report } = await waitFor(async () => {
      const result = await check();
      return result.report.ok ? result : undefined;
    }, { timeoutMs: 30_000, intervalMs: 1000, what: "the invariants to hold" }).catch(async () => check());
    expect(report.violations).toEqual({ lost: [], twoOutcomes: [], duplicateCharges: [], unrefundedCharges: [], duplicateEmails: [], missingEmails: [], stock: [], ordersPerKey: [], acceptedNotCreated: [], createdNotAccepted: [], completedNotCommitted: [], reservationNotReleased: [], cancelIgnored: [] });
    expect(code).toBe(0);
    expect(report.accepted).toBeGreaterThanOrEqual(20);
    expect(report.charges).toBeGreaterThan(0);
    expect(report.emails).toBeGreaterThanOrEqual(report.accepted);
  });

  it("negative control: with dedup switched off, redelivered commands charge and email twice, and the checker fails", async () => {
    for (const name of ["payment", "notification"]) {
      await system.stopService(name);
      await system.startService(name, { UNSAFE_DISABLE_DEDUP: "1", ORDERFLOW_TEST_RUN: "1" });
    }
    const watch = await watchTopics(t, ["payments.requested", "notifications.email"]);
    const id = await place(body([{ product_id: "mouse", quantity: 1, price: "25.00" }]));
    expect((await terminal(id)).status).toBe("COMPLETED");
    for (const topic of ["payments.requested", "notifications.email"]) {
      const [record] = await waitFor(() => (watch.of(id, topic).length > 0 ? watch.of(id, topic) : undefined), { what: `${topic} of the order` });
      const { schema, message, envelope } = record;
      await publisher.send(t.topic(topic), encodeRecord(schema, message, { key: (message as unknown as { customerId?: string }).customerId ?? id, orderId: id, producer: envelope.producer, encoding: "binary", eventId: envelope.eventId, occurredAt: envelope.occurredAt }));
    }
    await watch.close();
    const { code, report } = await waitFor(async () => {
      const result = await check();
      return result.report.violations["duplicateCharges"]?.includes(id) && result.report.violations["duplicateEmails"]?.length ? result : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500, what: "the checker to see the duplicates" });
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.violations["duplicateEmails"]?.every((notification) => notification.startsWith(id))).toBe(true);
  });
});
