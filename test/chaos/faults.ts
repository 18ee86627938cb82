/**
 * The faults the suite injects while orders flow. Each one breaks something real — a process, the
 * broker, Redis, the network, the data — holds it broken for a while, heals it, and says what it
 * did on the timeline. Choices (which instance, which partition) come from the seeded generator,
 * so a run can be repeated.
 */
import { Redis } from "ioredis";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { createKafka, createProducer, topicName, type Admin } from "../../lib/kafka/client.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { loadConfig, type Config } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { keyspace } from "../../lib/redis.ts";
import { formatMinor } from "../../services/order/money.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { orderBody, testCards } from "../../services/cli/samples.ts";
import { bearer } from "../../services/cli/tokens.ts";
import { processName, serviceNames, type RunningSystem } from "../harness/processes.ts";
import { waitFor } from "../harness/wait.ts";
import { dlqRefusal } from "./dlq-refusal.ts";
import type { ChaosEnvironment } from "./environment.ts";
import { hostileRequests, type RequestTally } from "./hostile.ts";
import type { OrderLoad } from "./load.ts";
import { consumedTopics, generatePoison } from "./poison.ts";

/** What a fault works with. */
export interface FaultContext {
  readonly env: ChaosEnvironment;
  readonly system: RunningSystem;
  readonly rng: RandomGenerator;
  /** Straight to the broker (never proxied): poison records, group administration. */
  readonly admin: Admin;
  readonly publisher: Publisher;
  readonly config: Config;
  /** Instances per service in this run. */
  readonly instances: number;
  /** Environment for services started by a fault (same as the system's). */
  readonly envOf: (service: string, instance: number) => Record<string, string>;
  /** What every service is started with besides its addresses (their timeouts, for faults that outlast them). */
  readonly serviceSettings: Readonly<Record<string, string>>;
  /** Adds an entry to the timeline. */
  note(event: string, detail?: Record<string, unknown>): void;
  /** Poison records sent, by poison id (poison.ts), with the topic they were sent to. */
  readonly poison: Map<string, string>;
  /** The answers to the hostile requests. */
  readonly requests: RequestTally;
  /** The run's order load: a fault's own orders go through it, so they are accounted for like the rest. */
  readonly load: OrderLoad;
  /** What a fault found broken beyond the checker's rules (each fails the run). */
  readonly problems: string[];
}

export interface Fault {
  readonly name: string;
  readonly description: string;
  /** What the fault needs of the environment. */
  readonly needs?: { readonly proxied?: boolean; readonly topology?: "single" | "cluster"; readonly instances?: number };
  /** Breaks, holds, heals. Resolves once healed. */
  run(ctx: FaultContext): Promise<void>;
}

/** Waits for a fault's hold time: the fault is in place meanwhile (this is the injection, not a synchronisation). */
const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const pick = <T>(rng: RandomGenerator, items: readonly T[]): T => items[uniformInt(rng, 0, items.length - 1)];

/** SIGKILLs one random instance of each service in turn, at a random moment, and restarts it. */
export const killServices: Fault = {
  name: "service-sigkill",
  description: "SIGKILL one instance of every service at a random moment (transactions in flight), then restart it",
  async run(ctx) {
    for (const service of serviceNames) {
      const name = processName(service, uniformInt(ctx.rng, 0, ctx.instances - 1));
      await hold(uniformInt(ctx.rng, 200, 1500));
      ctx.note("kill", { process: name });
      await ctx.system.stopService(name, true);
      await hold(uniformInt(ctx.rng, 500, 3000));
      await ctx.system.startService(name);
      ctx.note("restarted", { process: name });
    }
  },
};

export const brokerKill: Fault = {
  name: "broker-sigkill",
  description: "SIGKILL the broker, keep it down for a few seconds, start it again",
  needs: { topology: "single" },
  async run(ctx) {
    ctx.note("kill broker");
    await ctx.env.killBroker();
    await hold(uniformInt(ctx.rng, 3000, 6000));
    await ctx.env.startBroker();
    ctx.note("broker back");
  },
};

export const brokerFreeze: Fault = {
  name: "broker-sigstop",
  description: "SIGSTOP the broker for longer than the consumer session and transaction timeouts, then SIGCONT",
  needs: { topology: "single" },
  async run(ctx) {
    ctx.note("freeze broker");
    ctx.env.signalBroker("SIGSTOP");
    await hold(15_000);
    ctx.env.signalBroker("SIGCONT");
    ctx.note("broker thawed");
  },
};

/**
 * A produce that times out at the client but is written: the broker is frozen while the load's
 * POST /orders are publishing, for longer than the order service's delivery timeout, so those
 * answer 503 (or not at all) while their ProduceRequests wait in the frozen broker's sockets; on
 * SIGCONT the broker writes them. The load retries each with its Idempotency-Key, and the checker's
 * "one order per idempotency key" and "accepted set equals orders.created" rules judge the result.
 */
export const produceTimeout: Fault = {
  name: "produce-timeout",
  description: "SIGSTOP the broker during POST /orders for longer than the order service's delivery timeout, then SIGCONT: timed-out produces get written while clients retry with the same Idempotency-Key",
  needs: { topology: "single" },
  async run(ctx) {
    const deliveryTimeoutMs = loadConfig("order", ctx.serviceSettings).kafka.deliveryTimeoutMs;
    ctx.note("freeze broker during POST /orders", { deliveryTimeoutMs });
    ctx.env.signalBroker("SIGSTOP");
    await hold(deliveryTimeoutMs + 2000);
    ctx.env.signalBroker("SIGCONT");
    ctx.note("broker thawed");
  },
};

export const leaderKill: Fault = {
  name: "cluster-leader-sigkill",
  description: "on the 3-node cluster, SIGKILL the leader of a busy partition (acks=all, min ISR 2), restart it later",
  needs: { topology: "cluster" },
  async run(ctx) {
    const topic = topicName(ctx.config, "orders.created");
    const [metadata] = await ctx.admin.fetchTopicMetadata({ topics: [topic] });
    const partition = pick(ctx.rng, metadata?.partitions ?? []);
    const leader = partition?.leader ?? 1;
    ctx.note("kill partition leader", { topic, partition: partition?.partitionId, node: leader });
    await ctx.env.killBroker(leader);
    await hold(10_000);
    await ctx.env.startBroker(leader);
    ctx.note("node back", { node: leader });
  },
};

/** Network faults between each service and Kafka, and each service and Redis: latency, resets, a partition. */
export const networkFaults: Fault = {
  name: "network",
  description: "through Toxiproxy, for every service in turn, to Kafka and to Redis: 500 ms latency, connection resets, then a full partition",
  needs: { proxied: true },
  async run(ctx) {
    const proxy = ctx.env.proxy;
    if (proxy === undefined) throw new Error("network faults need the proxied environment");
    for (const service of serviceNames) {
      for (const target of ["kafka", "redis"]) {
        const name = `${target}-${service}`;
        ctx.note("latency", { proxy: name, ms: 500 });
        await proxy.addToxic(name, "latency", { latency: 500, jitter: 100 });
        await hold(uniformInt(ctx.rng, 2000, 4000));
        await proxy.reset();
        ctx.note("reset_peer", { proxy: name });
        await proxy.addToxic(name, "reset_peer", { timeout: 200 });
        await hold(uniformInt(ctx.rng, 1000, 3000));
        await proxy.reset();
        ctx.note("partition", { proxy: name });
        await proxy.setEnabled(name, false);
        await hold(uniformInt(ctx.rng, 4000, 8000));
        await proxy.setEnabled(name, true);
        ctx.note("healed", { proxy: name });
      }
    }
  },
};

export const redisRestart: Fault = {
  name: "redis-restart",
  description: "SIGKILL Redis and start it again from its append-only file; then SCRIPT FLUSH",
  async run(ctx) {
    ctx.note("kill redis");
    await ctx.env.restartRedis();
    ctx.note("redis back");
    await hold(2000);
    await ctx.env.flushScripts();
    ctx.note("script cache flushed");
  },
};

/**
 * Redis stalled, not gone: SIGSTOPped for longer than the services' command timeout, connections
 * open and unanswered, then SIGCONTed. Every command in flight times out (REDIS_COMMAND_TIMEOUT_MS)
 * and is handled as an outage — consumers wait it out, the order API answers 503 or fails open —
 * and nothing may hang on the stalled connection once Redis answers again.
 */
export const redisStall: Fault = {
  name: "redis-sigstop",
  description: "SIGSTOP Redis for longer than REDIS_COMMAND_TIMEOUT_MS (commands in flight time out), then SIGCONT",
  async run(ctx) {
    const commandTimeoutMs = loadConfig("chaos", ctx.serviceSettings).redisCommandTimeoutMs;
    ctx.note("stall redis", { commandTimeoutMs });
    ctx.env.signalRedis("SIGSTOP");
    try {
      await hold(commandTimeoutMs + 3000);
    } finally {
      ctx.env.signalRedis("SIGCONT");
    }
    ctx.note("redis answers again");
  },
};

/** A reservation's lifetime for the TTL fault, and the gateway's latency: about as long, so some orders outlive it. */
const SHORT_RESERVATION_TTL_MS = 1200;
const SLOW_GATEWAY_MS = 1000;

/**
 * Reservations expiring under load: every inventory instance restarted with a short
 * RESERVATION_TTL_MS and every payment instance with a gateway latency about as long, for a while,
 * then both restarted as they were. Orders whose charge comes after their reservation's expiry
 * fail (TIMEOUT) with the reservation released and the charge refunded; the others complete. The
 * checker's no-oversell rule judges it: completed ⇒ committed, failed ⇒ released.
 */
export const reservationTtl: Fault = {
  name: "reservation-ttl",
  description: `RESERVATION_TTL_MS=${SHORT_RESERVATION_TTL_MS} on inventory and GATEWAY_LATENCY_MS=${SLOW_GATEWAY_MS} on payment for a while: some reservations expire before their charge`,
  async run(ctx) {
    const settings = { inventory: { RESERVATION_TTL_MS: String(SHORT_RESERVATION_TTL_MS) }, payment: { GATEWAY_LATENCY_MS: String(SLOW_GATEWAY_MS) } } as const;
    const restartAll = async (extra: (service: keyof typeof settings) => Record<string, string> | undefined) => {
      for (const service of ["inventory", "payment"] as const) {
        for (let i = 0; i < ctx.instances; i += 1) {
          const name = processName(service, i);
          await ctx.system.stopService(name);
          await ctx.system.startService(name, extra(service));
        }
      }
    };
    await restartAll((service) => settings[service]);
    ctx.note("short reservations, slow gateway", settings);
    await hold(15_000);
    await restartAll(() => undefined);
    ctx.note("usual reservations and gateway");
  },
};

/** SKUs the oversized-order fault seeds with no stock, and the lines of each crafted order (PlaceOrderRequest allows 100). */
const SHORT_SKUS = Array.from({ length: 100 }, (_, i) => `chaos_short_${String(i).padStart(3, "0")}`);
const SHORT_SKU_PRICE_MINOR = 100n;

/**
 * Crafted oversized orders through the API: 100 lines of SKUs with no stock (the shortage detail,
 * some 3,000 characters, is longer than OrderFailed.detail's 1,000) and 100 lines of unknown
 * SKUs. Each must end FAILED — cut detail, no abort loop, no poisoned outbox — while the load flows.
 */
export const oversizedOrder: Fault = {
  name: "oversized-order",
  description: "orders of 100 lines of out-of-stock SKUs (shortage detail > OrderFailed's 1000 chars) and of 100 unknown SKUs: each ends FAILED, nothing wedged",
  async run(ctx) {
    const redis = new Redis(ctx.env.redisUrl);
    try {
      await new StockStore(redis, keyspace(ctx.config.redisKeyPrefix)).seedCatalog(SHORT_SKUS.map((sku) => ({ sku, name: sku, currency: "USD", priceMinor: SHORT_SKU_PRICE_MINOR, stock: 0 })));
    } finally {
      redis.disconnect();
    }
    const customerId = "chaos-crafted";
    const crafted = [
      ...[0, 1, 2].map(() => SHORT_SKUS.map((sku) => ({ product_id: sku, quantity: 1, price: formatMinor(SHORT_SKU_PRICE_MINOR, "USD") }))),
      SHORT_SKUS.map((_, i) => ({ product_id: `chaos_unknown_${i}`, quantity: 1, price: "1.00" })),
    ];
    const api = ctx.system.apiUrls[0] ?? "";
    const placed: string[] = [];
    for (const items of crafted) {
      const orderId = await ctx.load.place(api, orderBody({ customerId, email: "crafted@example.com", items, card: testCards.success }), false);
      if (orderId === undefined) ctx.problems.push("oversized-order: a crafted order was not accepted");
      else placed.push(orderId);
    }
    ctx.note("crafted orders placed", { orders: placed.length, lines: SHORT_SKUS.length });
    const auth = bearer(await ctx.system.credentials.forCustomer(customerId));
    for (const orderId of placed) {
      const status = await waitFor(async () => {
        const response = await fetch(`${api}/orders/${orderId}`, { headers: auth }).catch(() => undefined);
        const order = response?.ok === true ? ((await response.json()) as { status: string }) : undefined;
        return order !== undefined && ["COMPLETED", "FAILED", "CANCELLED"].includes(order.status) ? order.status : undefined;
      }, { timeoutMs: 120_000, intervalMs: 500, what: `crafted order ${orderId} to end` }).catch(() => "no outcome");
      if (status !== "FAILED") ctx.problems.push(`oversized-order: crafted order ${orderId} ended ${status}, not FAILED`);
    }
    ctx.note("crafted orders ended");
  },
};

/** Instances added and removed in quick succession, so the group rebalances again and again. */
export const rebalanceStorm: Fault = {
  name: "rebalance-storm",
  description: "start and stop extra instances of a service several times in quick succession under load",
  async run(ctx) {
    const service = pick(ctx.rng, ["orchestrator", "payment", "inventory"] as const);
    for (let round = 0; round < 3; round += 1) {
      const extras = [ctx.instances + 1, ctx.instances + 2].map((i) => processName(service, i));
      ctx.note("add instances", { processes: extras });
      await Promise.all(extras.map((name) => ctx.system.startService(name)));
      await hold(uniformInt(ctx.rng, 1000, 3000));
      ctx.note("remove instances", { processes: extras });
      await Promise.all(extras.map((name, i) => ctx.system.stopService(name, i === 0)));
    }
  },
};

/**
 * A payment instance whose handler takes longer than max.poll.interval.ms: the group expels it
 * mid-transaction, its commit is fenced, and the others carry on.
 */
export const slowHandler: Fault = {
  name: "slow-handler",
  description: "a payment instance whose handler (gateway call) takes 12 s against a 10 s max poll interval, for a while",
  needs: { instances: 2 },
  async run(ctx) {
    const name = processName("payment", ctx.instances + 3);
    ctx.note("start slow instance", { process: name });
    await ctx.system.startService(name, { GATEWAY_LATENCY_MS: "12000", GATEWAY_TIMEOUT_MS: "30000", KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS: "10000" });
    await hold(25_000);
    await ctx.system.stopService(name, true);
    ctx.note("slow instance gone", { process: name });
  },
};

/** Records produced per request while the poison fault sends (about 1 MB each at most, under the producer's batch limits). */
const POISON_BATCH = 50;

/**
 * `perTopic` generated poison records (poison.ts, seeded from the run's generator) on every
 * consumed topic, produced straight to the broker with their own keys (or none) and headers.
 * Each must end in its topic's DLQ.
 */
export function poisonRecords(perTopic: number): Fault {
  return {
    name: "poison",
    description: `${perTopic} generated poison records per consumed topic: random bytes, another type, invalid fields, truncated or corrupted protobuf, missing or unknown headers, bad JSON, no value, oversized; some keyless`,
    async run(ctx) {
      const seed = uniformInt(ctx.rng, 0, 0x7fffffff);
      const producer = createProducer(createKafka(ctx.config, createLogger("chaos-poison", "fatal")), ctx.config);
      await producer.connect();
      try {
        const sent: Record<string, number> = {};
        for (const base of consumedTopics) {
          const topic = topicName(ctx.config, base);
          const records = generatePoison(base, perTopic, seed);
          for (let i = 0; i < records.length; i += POISON_BATCH) {
            const batch = records.slice(i, i + POISON_BATCH);
            for (const record of batch) ctx.poison.set(record.id, topic);
            await producer.send({ topic, messages: batch.map(({ key, value, headers }) => ({ key, value, headers })) });
          }
          sent[base] = records.length;
        }
        ctx.note("poison sent", { seed, perTopic, topics: Object.keys(sent).length, records: ctx.poison.size });
      } finally {
        await producer.disconnect();
      }
    },
  };
}

/** Deletes a service's consumer group while its instances are down: they replay the topic from the start. */
/** Groups each replayed service consumes with (lib/service.ts names them by topicName). */
const replayedGroups = { payment: ["payment"], inventory: ["inventory", "inventory-actions"], notification: ["notification"] } as const;

/** Positions a replayed service must have committed before its reset, so that the replay hands back records it handled. */
const REPLAY_MIN_POSITIONS = 20;

/** Positions `groupId` has committed past the start of its topics: what a reset to the beginning reads again. */
async function committedPositions(ctx: FaultContext, groupId: string): Promise<number> {
  let positions = 0;
  for (const { topic, partitions } of await ctx.admin.fetchOffsets({ groupId })) {
    const low = new Map((await ctx.admin.fetchTopicOffsets(topic)).map((mark) => [mark.partition, Number(mark.low)]));
    for (const { partition, offset } of partitions) positions += Math.max(0, Number(offset) - (low.get(partition) ?? 0));
  }
  return positions;
}

/**
 * Stops every instance of payment, inventory and notification in turn, deletes its groups (their
 * next start reads every topic from the beginning) and starts them: every command and email
 * request comes again, and outcomes, charges and emails must not change. A service is reset only
 * once it has committed at least REPLAY_MIN_POSITIONS positions: on a loaded machine the fault can
 * begin before the saga reached payment, and a reset then replays nothing and proves nothing. A
 * service that never gets there is a problem of the run.
 */
export const topicReplay: Fault = {
  name: "replay",
  description: "stop every payment, inventory and notification instance, delete their groups (back to the beginning), start them: outcomes, charges and emails must not change",
  async run(ctx) {
    for (const [service, groups] of Object.entries(replayedGroups)) {
      const groupIds = groups.map((g) => topicName(ctx.config, g));
      const handled = async () => (await Promise.all(groupIds.map((g) => committedPositions(ctx, g)))).reduce((a, b) => a + b, 0);
      await waitFor(async () => (await handled()) >= REPLAY_MIN_POSITIONS, { timeoutMs: 120_000, intervalMs: 500, what: `the ${service} groups to commit ${REPLAY_MIN_POSITIONS} positions` }).catch((err: unknown) => {
        ctx.problems.push(`replay: ${messageOf(err)}; a reset now replays little or nothing`);
      });
      const names = Array.from({ length: ctx.instances }, (_, i) => processName(service, i));
      for (const name of names) await ctx.system.stopService(name);
      const positions = await handled();
      await waitFor(async () => {
        await ctx.admin.deleteGroups(groupIds);
        return true;
      }, { timeoutMs: 60_000, intervalMs: 1000, what: `the ${service} groups to be deletable` });
      ctx.note("groups reset to the beginning", { groups, positionsReplayed: positions });
      for (const name of names) await ctx.system.startService(name);
    }
  },
};

export const allFaults: readonly Fault[] = [
  killServices,
  brokerKill,
  brokerFreeze,
  produceTimeout,
  networkFaults,
  redisRestart,
  redisStall,
  reservationTtl,
  oversizedOrder,
  rebalanceStorm,
  slowHandler,
  poisonRecords(1000),
  dlqRefusal,
  hostileRequests(10_000),
  topicReplay,
  leaderKill,
];
