import { createServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server } from "node:net";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OrderCreatedSchema } from "../../../gen/orderflow/v1/events_pb.ts";
import { loadConfig } from "../../../lib/config.ts";
import type { RecordContext, RecordHandler } from "../../../lib/kafka/consumer-runner.ts";
import { createLogger } from "../../../lib/log.ts";
import { keyspace } from "../../../lib/redis.ts";
import type { Runtime } from "../../../lib/service.ts";
import { waitFor } from "../../../test/harness/wait.ts";
import { createDashboard } from "./dashboard.ts";
import { DASHBOARD_GROUP } from "./broker.ts";
import { Feed } from "./feed.ts";

/**
 * A runtime whose broker and Redis fail while `failing` says so: enough for the feed, which only
 * reads offsets and the order read model.
 */
function fakeRuntime(brokers = "127.0.0.1:1") {
  const failing = { broker: true, redis: true };
  /** Admin clients, and the consumers they are made from (broker.ts: openRoundAdmin). */
  const clients = { opened: 0, closed: 0, holdersOpened: 0, holdersClosed: 0 };
  const declared: { group: string; topics: readonly string[]; handler: RecordHandler }[] = [];
  const fail = (what: keyof typeof failing) => (failing[what] ? Promise.reject(new Error(`${what} down`)) : undefined);
  const admin = {
    connect: () => {
      clients.opened += 1;
      return Promise.resolve();
    },
    disconnect: () => {
      clients.closed += 1;
      return Promise.resolve();
    },
    fetchOffsets: () => fail("broker") ?? Promise.resolve([]),
    fetchTopicOffsets: () => fail("broker") ?? Promise.resolve([{ partition: 0, offset: "0", low: "0", high: "0" }]),
  };
  const holder = {
    connect: () => {
      clients.holdersOpened += 1;
      return Promise.resolve();
    },
    disconnect: () => {
      clients.holdersClosed += 1;
      return Promise.resolve();
    },
    dependentAdmin: () => admin,
  };
  const redis = {
    defineCommand: () => undefined,
    zrevrange: () => fail("redis") ?? Promise.resolve([]),
    hgetall: () => fail("redis") ?? Promise.resolve({}),
    zrange: () => fail("redis") ?? Promise.resolve([]),
    get: () => fail("redis") ?? Promise.resolve(null),
    // The order read model's scripts (projection.ts): an empty model.
    liveOrderIds: () => fail("redis") ?? Promise.resolve([]),
    liveOrderView: () => fail("redis") ?? Promise.resolve([]),
    liveOrderHistory: () => fail("redis") ?? Promise.resolve([]),
  };
  const runtime = {
    config: loadConfig("admin", { TOPIC_PREFIX: "p.", KAFKA_BROKERS: brokers }),
    log: createLogger("admin", "silent"),
    // No admin(): a plain admin client crashes the process on a NOT_COORDINATOR answer (broker.ts).
    kafka: { consumer: () => holder },
    redis,
    keys: keyspace("t"),
    consume: (options: { group: string; topics: readonly string[]; handler: RecordHandler }) => {
      declared.push(options);
      return {};
    },
  } as unknown as Runtime;
  return { runtime, failing, declared, clients };
}

/** A TCP listener standing in for a broker that accepts connections. */
async function listening(): Promise<{ server: Server; address: string }> {
  const server = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("feed", () => {
  it("declares its consumer group over the outcome topics and counts what it hands in", async () => {
    const { runtime, failing, declared } = fakeRuntime();
    failing.redis = false;
    const feed = new Feed({ runtime, services: [], refreshMs: 10_000, healthTimeoutMs: 100 });
    expect(declared.map((d) => [d.group, [...d.topics].sort()])).toEqual([[DASHBOARD_GROUP, ["orders.cancelled", "orders.completed", "orders.created", "orders.failed"]]]);
    const envelope = { eventId: "e1", eventType: OrderCreatedSchema.typeName, contentType: "application/x-protobuf", schemaVersion: "1", orderId: "o1", producer: "order", occurredAt: new Date() };
    await declared[0]?.handler({ envelope, schema: OrderCreatedSchema, message: create(OrderCreatedSchema) }, { topic: "p.orders.created" } as RecordContext);
    expect((await feed.snapshot()).totals.created).toBe(1);
  });

  it("keeps the last figures and marks them stale while a source fails, never throwing from its timer", async () => {
    const broker = await listening();
    const { runtime, failing, clients } = fakeRuntime(broker.address);
    const feed = new Feed({ runtime, services: [], refreshMs: 10, healthTimeoutMs: 100 });
    await feed.start();
    try {
      const broken = await feed.snapshot();
      expect([...broken.stale].sort()).toEqual(["dlq", "lag", "latestOrders"]);
      expect(broken.lag).toEqual([]);
      expect(broken.breaker.state).toBe("unknown");
      failing.broker = false;
      failing.redis = false;
      const fresh = await waitFor(async () => {
        const s = await feed.snapshot();
        return s.stale.length === 0 && s;
      }, { timeoutMs: 5_000, what: "the figures to be fresh again" });
      expect(fresh.dlq.every((d) => d.records === 0)).toBe(true);
      expect(fresh.dlq.length).toBeGreaterThan(0);
      failing.broker = true;
      const stale = await waitFor(async () => {
        const s = await feed.snapshot();
        return s.stale.includes("dlq") && s;
      }, { timeoutMs: 5_000, what: "the DLQ figures to go stale" });
      expect(stale.dlq).toEqual(fresh.dlq);
    } finally {
      await feed.stop();
      await new Promise<void>((resolve) => broker.server.close(() => resolve()));
    }
    // One admin client per round, made from a consumer of its own; both closed at its end.
    expect(clients.opened).toBeGreaterThan(2);
    expect(clients.closed).toBe(clients.opened);
    expect(clients.holdersOpened).toBe(clients.opened);
    expect(clients.holdersClosed).toBe(clients.holdersOpened);
  });

  it("opens no admin client while no broker accepts connections", async () => {
    const { runtime, failing, clients } = fakeRuntime("127.0.0.1:1");
    failing.broker = false;
    failing.redis = false;
    const feed = new Feed({ runtime, services: [], refreshMs: 10, healthTimeoutMs: 100 });
    await feed.start();
    try {
      expect([...(await feed.snapshot()).stale].sort()).toEqual(["dlq", "lag"]);
    } finally {
      await feed.stop();
    }
    expect(clients.opened).toBe(0);
    expect(clients.holdersOpened).toBe(0);
  });
});

describe("dashboard requests", () => {
  it("answers 500 without detail when a read fails, 405 to anything but GET, and leaves other paths alone", async () => {
    const { runtime } = fakeRuntime();
    const dashboard = createDashboard(runtime, { DASHBOARD_SERVICES: "" });
    const server = createServer((req, res) => {
      void dashboard.handle(req, res).then((answered) => {
        if (!answered) res.writeHead(418).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const failed = await fetch(`${base}/dashboard/api/orders/0b7e6c1e-2f0a-4c1b-9a55-3b1f8e1d2c3a`);
      expect(failed.status).toBe(500);
      expect(await failed.json()).toEqual({ error: "internal error" });
      const posted = await fetch(`${base}/dashboard`, { method: "POST" });
      expect(posted.status).toBe(405);
      expect(posted.headers.get("allow")).toBe("GET");
      expect((await fetch(`${base}/dashboards`)).status).toBe(418);
      expect((await fetch(`${base}/dashboard/api/nothing`)).status).toBe(404);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("refuses a bad DASHBOARD_SERVICES or refresh interval at build time", () => {
    const { runtime } = fakeRuntime();
    expect(() => createDashboard(runtime, { DASHBOARD_SERVICES: "order" })).toThrow(/DASHBOARD_SERVICES/);
    expect(() => createDashboard(runtime, { DASHBOARD_REFRESH_MS: "5" })).toThrow(/DASHBOARD_REFRESH_MS/);
  });
});
