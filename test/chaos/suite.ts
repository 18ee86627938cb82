/**
 * One fault-injection run: its own broker and Redis (ChaosEnvironment), the whole system as real
 * processes (one or more instances per service), a steady seeded order load, and faults injected
 * one after another while the load runs. After each fault heals, the time until every order
 * accepted before the heal reached an outcome is its recovery time. At the end the load stops,
 * the system goes quiet, and the invariant checker judges the run; every poison record must be in
 * its DLQ and no good record may be. The result is a report, not an exception.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isMessage, type DescMessage } from "@bufbuild/protobuf";
import { Redis } from "ioredis";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { DLQ_SUFFIX, catalog, replication, sagaTopics } from "../../infra/topics.ts";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { EmailRequestedSchema, OrderCancelledSchema, OrderCompletedSchema, PaymentAction, PaymentCompletedSchema, PaymentFailedSchema, PaymentRefundedSchema, PaymentRequestedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import { loadConfig } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { createKafka, topicName } from "../../lib/kafka/client.ts";
import { createPublisher } from "../../lib/kafka/publisher.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { desiredTopics, applyTopics } from "../../lib/kafka/topics.ts";
import { checkInvariants } from "../../services/cli/check.ts";
import type { InvariantReport } from "../../services/cli/invariants.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { liveKeys } from "../../services/order/generations.ts";
import { keyspace } from "../../lib/redis.ts";
import { startSystem, type serviceNames } from "../harness/processes.ts";
import { waitFor } from "../harness/wait.ts";
import { ChaosEnvironment, type Topology } from "./environment.ts";
import type { Fault, FaultContext } from "./faults.ts";
import { RequestTally, type RequestCounts } from "./hostile.ts";
import { OrderLoad, loadCatalog, type LoadCounts } from "./load.ts";
import { poisonIdOf } from "./poison.ts";

export interface SuiteOptions {
  readonly name: string;
  readonly seed: number;
  /** Keep the load running until at least this many orders were accepted (and every fault ran). */
  readonly orders: number;
  readonly ratePerSecond: number;
  readonly instances: number;
  readonly topology: Topology;
  readonly proxied: boolean;
  readonly faults: readonly Fault[];
  readonly stateDir: string;
  /**
   * Extra environment for every instance of the named services, on top of the common settings and
   * kept across the restarts faults make (for example a deliberately broken build for a negative control).
   */
  readonly serviceEnv?: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>>;
  /** Progress lines (the timeline as it happens). */
  readonly progress?: (line: string) => void;
}

export interface TimelineEntry {
  readonly atMs: number;
  readonly event: string;
  readonly detail?: Record<string, unknown>;
}

export interface FaultResult {
  readonly name: string;
  readonly description: string;
  readonly startedAtMs: number;
  readonly healedAtMs: number;
  /** From the heal until every order accepted before it had an outcome; undefined if that never happened. */
  readonly recoveryMs: number | undefined;
}

export interface ScenarioReport {
  readonly name: string;
  readonly seed: number;
  readonly config: {
    readonly ratePerSecond: number;
    readonly instances: number;
    readonly topology: Topology;
    readonly proxied: boolean;
    readonly targetOrders: number;
    /** Environment of every service beyond addresses; defaults (README) apply to the rest. */
    readonly serviceSettings: Readonly<Record<string, string>>;
    /** Extra environment of named services (SuiteOptions.serviceEnv). */
    readonly serviceEnv: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>>;
  };
  readonly versions: Readonly<Record<string, string>>;
  readonly durationMs: number;
  readonly timeline: readonly TimelineEntry[];
  readonly faults: readonly FaultResult[];
  readonly load: LoadCounts;
  readonly invariants: InvariantReport;
  /** What the hostile-input faults sent and what became of it. */
  readonly hostileInput: {
    readonly poison: {
      readonly sent: number;
      /** Per consumed topic (catalog name): records sent and, of those, not found in its DLQ. */
      readonly perTopic: Readonly<Record<string, { readonly sent: number; readonly missingFromDlq: number }>>;
      /** Poison ids not found in their topic's DLQ. */
      readonly missingFromDlq: readonly string[];
      readonly goodRecordsDeadLettered: number;
    };
    readonly requests: RequestCounts;
  };
  readonly verdict: { readonly ok: boolean; readonly reasons: readonly string[] };
}

/** What every service of a run is started with besides its addresses (reported with the run). */
const serviceSettings: Readonly<Record<string, string>> = {
  LOG_LEVEL: "warn",
  KAFKA_CONSUMER_SESSION_TIMEOUT_MS: "6000",
  TX_TIMEOUT_MS: "10000",
};

type ServiceName = (typeof serviceNames)[number];

const terminal = new Set([OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED].map(String));

/** The orders among `ids` without an outcome in the read model yet. */
async function pendingOf(redis: Redis, ids: readonly string[]): Promise<string[]> {
  const pending: string[] = [];
  // The read model's live generation (a rebuild may have swapped one in).
  const readModel = await liveKeys(redis, keyspace("of"));
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const pipeline = redis.pipeline();
    for (const id of chunk) pipeline.hget(readModel("order", id), "status");
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([, status], j) => {
      if (!terminal.has(String(status))) pending.push(chunk[j]);
    });
  }
  return pending;
}

function versions(): Record<string, string> {
  const root = join(import.meta.dirname, "..", "..");
  const kafka = /KAFKA_VERSION="?([^"\n]+)/.exec(readFileSync(join(root, "infra", "kafka", "kafka.env"), "utf8"))?.[1] ?? "?";
  const pkg = JSON.parse(readFileSync(join(root, "node_modules", "@confluentinc", "kafka-javascript", "package.json"), "utf8")) as { version: string; librdkafka?: string };
  return { node: process.version, kafka, "confluent-kafka-javascript": pkg.version, librdkafka: pkg.librdkafka ?? "?" };
}

export async function runScenario(options: SuiteOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const timeline: TimelineEntry[] = [];
  const note = (event: string, detail?: Record<string, unknown>) => {
    const entry = { atMs: Date.now() - started, event, ...(detail === undefined ? {} : { detail }) };
    timeline.push(entry);
    options.progress?.(`[${options.name} +${(entry.atMs / 1000).toFixed(1)}s] ${event}${detail === undefined ? "" : ` ${JSON.stringify(detail)}`}`);
  };
  const logDir = join(options.stateDir, "..", `${options.name}-logs`);
  rmSync(logDir, { recursive: true, force: true });
  const env = new ChaosEnvironment({ topology: options.topology, proxied: options.proxied, stateDir: options.stateDir });
  await env.start();
  note("environment up", { brokers: env.brokers, redis: env.redisUrl, proxied: options.proxied });
  const config = loadConfig("chaos", { KAFKA_BROKERS: env.brokers, REDIS_URL: env.redisUrl, LOG_LEVEL: "warn", KAFKA_PRODUCER_MESSAGE_MAX_BYTES: "1048576", TOPIC_PROFILE: options.topology === "cluster" ? "cluster" : "local", HOME: process.env["HOME"] ?? "" });
  // The suite breaks the broker on purpose: its own clients' connection errors are expected, not news.
  const log = createLogger("chaos", "fatal");
  const kafka = createKafka(config, log);
  const admin = kafka.admin();
  await admin.connect();
  const publisher = await createPublisher(kafka, config);
  const redis = new Redis(env.redisUrl);
  // Redis is killed on purpose mid-run; ioredis reconnects, and pendingOf is polled again.
  redis.on("error", () => undefined);
  try {
    await applyTopics(admin, desiredTopics(catalog, replication[config.topicProfile]));
    await new StockStore(redis, keyspace(config.redisKeyPrefix)).seedCatalog(loadCatalog);
    const common = { ...serviceSettings, TOPIC_PROFILE: config.topicProfile, HOME: process.env["HOME"] ?? "" };
    const serviceEnv = options.serviceEnv ?? {};
    const envOf = (service: string) => ({ ...serviceEnv[service as ServiceName], ...env.addressesOf(service) });
    const system = await startSystem({ ...common, KAFKA_BROKERS: env.brokers, REDIS_URL: env.redisUrl }, { instances: options.instances, envOf, logDir });
    note("system up", { processes: system.processes.length });
    try {
      const rng = xoroshiro128plus(options.seed);
      const load = new OrderLoad({ apiUrls: system.apiUrls, credentials: system.credentials, ratePerSecond: options.ratePerSecond, rng });
      const poison = new Map<string, string>();
      const requests = new RequestTally();
      const problems: string[] = [];
      const ctx: FaultContext = { env, system, rng, admin, publisher, config, instances: options.instances, envOf, serviceSettings, note, poison, requests, load, problems };
      const faults: FaultResult[] = [];
      try {
        load.start();
        note("load started", { ratePerSecond: options.ratePerSecond });
        const steady = async (orders: number) => {
          const target = load.accepted.size + orders;
          await waitFor(() => load.accepted.size >= target, { timeoutMs: 600_000, intervalMs: 200, what: `${orders} more orders to be accepted` });
        };
        for (const fault of options.faults) {
          await steady(options.ratePerSecond * 5);
          const startedAtMs = Date.now() - started;
          note(`fault ${fault.name}: begin`);
          await fault.run(ctx);
          const healedAtMs = Date.now() - started;
          note(`fault ${fault.name}: healed`);
          const before = [...load.accepted.keys()];
          let recoveryMs: number | undefined;
          try {
            await waitFor(async () => (await pendingOf(redis, before)).length === 0, { timeoutMs: 240_000, intervalMs: 250, what: "the orders accepted before the heal to end" });
            recoveryMs = Date.now() - started - healedAtMs;
          } catch {
            recoveryMs = undefined;
            note(`fault ${fault.name}: orders still without an outcome`, { sample: (await pendingOf(redis, before)).slice(0, 5) });
          }
          note(`fault ${fault.name}: recovered`, { recoveryMs, ordersSoFar: load.accepted.size });
          faults.push({ name: fault.name, description: fault.description, startedAtMs, healedAtMs, recoveryMs });
        }
        await waitFor(() => load.accepted.size >= options.orders, { timeoutMs: 3_600_000, intervalMs: 500, what: `${options.orders} orders` });
      } finally {
        await load.stop();
        note("load stopped", { ...load.counts() });
      }
      const ids = [...load.accepted.keys()];
      // A quiet step whose time runs out is a failure of the run (named in its verdict), not a
      // reason to judge a system that is still busy.
      const notQuiet: string[] = [];
      const untilQuiet = (wait: Promise<unknown>) => wait.catch((err: unknown) => void notQuiet.push(`not quiet: ${messageOf(err)}`));
      await untilQuiet(waitFor(async () => (await pendingOf(redis, ids)).length === 0, { timeoutMs: 300_000, intervalMs: 500, what: "every accepted order to reach an outcome" }));
      // Emails go out after the outcome: quiet also means every requested notification arrived (or 5
      // minutes passed). A notification may be requested more than once (an outbox carried out again).
      const emailsOwed = async () => {
        const requested = new Set<string>();
        await readToEnd(config, admin, [topicName(config, "notifications.email")], (record) => {
          const request = decodeUnlessPoison(record, [EmailRequestedSchema]);
          if (request !== undefined) requested.add(request.message.notificationId);
        });
        const { messages } = (await (await fetch(`${system.mailUrl}/messages`)).json()) as { messages: { notificationId?: string }[] };
        for (const mail of messages) requested.delete(mail.notificationId ?? "");
        return requested.size;
      };
      await untilQuiet(waitFor(async () => (await emailsOwed()) <= 0, { timeoutMs: 300_000, intervalMs: 2000, what: "every requested email to arrive" }));
      // An order can end (its reservation expired) while payment still tries its charge behind an
      // open breaker; a charge taken then is refunded a moment later. Quiet also means every charge
      // and refund asked for was answered, and every charge of an order that did not keep it refunded.
      const paymentsOwed = async () => {
        const asked = { charge: new Set<string>(), refund: new Set<string>() };
        const answered = { charge: new Set<string>(), refund: new Set<string>() };
        const charged = new Set<string>();
        const kept = new Set<string>();
        const unkept = new Set<string>();
        const schemaOf: Record<string, DescMessage> = {
          "payments.requested": PaymentRequestedSchema,
          "payments.completed": PaymentCompletedSchema,
          "payments.failed": PaymentFailedSchema,
          "payments.refunded": PaymentRefundedSchema,
          "orders.completed": OrderCompletedSchema,
          "orders.cancelled": OrderCancelledSchema,
        };
        await readToEnd(config, admin, Object.keys(schemaOf).map((base) => topicName(config, base)), (record) => {
          const base = record.topic.slice(config.topicPrefix.length);
          const schema = schemaOf[base];
          const decoded = schema === undefined ? undefined : decodeUnlessPoison(record, [schema]);
          if (decoded === undefined) return;
          const orderId = decoded.envelope.orderId;
          if (isMessage(decoded.message, PaymentRequestedSchema)) (decoded.message.action === PaymentAction.CHARGE ? asked.charge : asked.refund).add(orderId);
          else if (base === "payments.completed") {
            charged.add(orderId);
            answered.charge.add(orderId);
          } else if (base === "payments.failed") answered.charge.add(orderId);
          else if (base === "payments.refunded") answered.refund.add(orderId);
          else if (base === "orders.completed") kept.add(orderId);
          else unkept.add(orderId);
        });
        const owed = [...asked.charge].filter((id) => !answered.charge.has(id));
        owed.push(...[...asked.refund].filter((id) => !answered.refund.has(id)));
        owed.push(...[...charged].filter((id) => (!kept.has(id) || unkept.has(id)) && !answered.refund.has(id)));
        return new Set(owed).size;
      };
      await untilQuiet(waitFor(async () => (await paymentsOwed()) === 0, { timeoutMs: 300_000, intervalMs: 2000, what: "every charge and refund asked for to be answered" }));
      // A release or commit goes out with the outcome and lands a moment later: quiet also means no
      // reservation still held (one held now is judged by the no-oversell rule).
      const stock = new StockStore(redis, keyspace(config.redisKeyPrefix));
      const held = async () => [...(await stock.reservationStates()).values()].filter((state) => state === "reserved").length;
      await untilQuiet(waitFor(async () => (await held()) === 0, { timeoutMs: 120_000, intervalMs: 1000, what: "every reservation to be committed or released" }));
      note("quiet", { pending: (await pendingOf(redis, ids)).length, emailsOwed: await emailsOwed(), paymentsOwed: await paymentsOwed(), reservationsHeld: await held() });
      const invariants = await checkInvariants({ config, log, kafka, json: true }, { timeoutMs: 300_000, mailsink: system.mailUrl, accepted: ids, cancelsAccepted: [...load.cancelsAccepted] });
      note("checked", { ok: invariants.ok });
      const deadLettered = new Map<string, string[]>();
      let goodRecordsDeadLettered = 0;
      await readToEnd(config, admin, sagaTopics.map((s) => topicName(config, `${s.name}${DLQ_SUFFIX}`)), (record) => {
        const id = poisonIdOf(record);
        if (id === undefined) goodRecordsDeadLettered += 1;
        else deadLettered.set(id, [...(deadLettered.get(id) ?? []), record.topic]);
      });
      const missingFromDlq = [...poison].filter(([id, topic]) => !(deadLettered.get(id) ?? []).includes(`${topic}${DLQ_SUFFIX}`)).map(([id]) => id);
      const perTopic: Record<string, { sent: number; missingFromDlq: number }> = {};
      const missing = new Set(missingFromDlq);
      for (const [id, topic] of poison) {
        const base = topic.slice(config.topicPrefix.length);
        const counts = (perTopic[base] ??= { sent: 0, missingFromDlq: 0 });
        counts.sent += 1;
        if (missing.has(id)) counts.missingFromDlq += 1;
      }
      const requestCounts = requests.counts();
      const loadCounts = load.counts();
      const reasons = [
        ...Object.entries(invariants.violations).filter(([, ids]) => ids.length > 0).map(([rule, ids]) => `${rule}: ${ids.length}`),
        ...(loadCounts.accepted < options.orders ? [`only ${loadCounts.accepted} of ${options.orders} orders were accepted`] : []),
      ...(loadCounts.refused.length > 0 ? [`${loadCounts.refused.length} orders refused, first: ${loadCounts.refused[0]}`] : []),
        ...(missingFromDlq.length > 0 ? [`${missingFromDlq.length} poison records missing from their DLQ`] : []),
        ...(goodRecordsDeadLettered > 0 ? [`${goodRecordsDeadLettered} good records dead-lettered`] : []),
        ...(requestCounts.byClass["5xx"] > 0 ? [`${requestCounts.byClass["5xx"]} hostile requests answered 5xx, first: ${requestCounts.failures.find((f) => !f.startsWith("no answer")) ?? ""}`] : []),
        ...(requestCounts.transportErrors > 0 ? [`${requestCounts.transportErrors} hostile requests without an answer, first: ${requestCounts.failures.find((f) => f.startsWith("no answer")) ?? ""}`] : []),
        ...faults.filter((f) => f.recoveryMs === undefined).map((f) => `${f.name} did not recover`),
        ...system.crashes.map((crash) => `a process crashed: ${crash}`),
        ...notQuiet,
        ...problems,
      ];
      return {
        name: options.name,
        seed: options.seed,
        config: { ratePerSecond: options.ratePerSecond, instances: options.instances, topology: options.topology, proxied: options.proxied, targetOrders: options.orders, serviceSettings, serviceEnv },
        versions: versions(),
        durationMs: Date.now() - started,
        timeline,
        faults,
        load: loadCounts,
        invariants,
        hostileInput: { poison: { sent: poison.size, perTopic, missingFromDlq, goodRecordsDeadLettered }, requests: requestCounts },
        verdict: { ok: reasons.length === 0, reasons },
      };
    } finally {
      await system.stop();
    }
  } finally {
    redis.disconnect();
    await publisher.disconnect();
    await admin.disconnect();
    await env.close();
  }
}
