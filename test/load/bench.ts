/**
 * `make bench`: the saga against the bare pipeline, on a broker and Redis of its own with
 * production settings (acks=all, idempotence, transactions). First the backlog relay test (one
 * transactional hop over 30,000 records, our relay against Kafka Streams; backlog.ts). Then for
 * each pipeline: three ramps (×1.2 every 30 s) to the highest sustainable rate (every order ended,
 * p99 under the bound), their median and spread, and 100 orders/s for 60 s, with CPU seconds and
 * peak RSS of every process (broker, Redis, each service or relay, the mail sink, the load
 * generator), the broker's request counts (JMX) and, for the saga, the record operations per order
 * (record-ops.ts). Writes bench/results/<date>.json, a Markdown report and SVG charts beside it.
 *
 *   tsx test/load/bench.ts [--step S] [--repeats N] [--start-rate R] [--bare-start-rate R] [--fixed-duration S]
 *                          [--backlog-records N] [--max-rate R] [--quick] [--only saga|bare|backlog|profile] [--out DIR]
 *   tsx test/load/bench.ts --render bench/results/<date>.json   (report and charts again, from a result)
 *
 * Last, the saga runs once more at --profile-rate with every service under `node --cpu-prof` and the
 * broker under Java Flight Recorder, and the report says where each one's CPU time went; the
 * profiles stay in bench/results/profiles/<date>/ (Chrome DevTools or speedscope; JDK Mission Control).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { catalog, replication, topicSpec } from "../../infra/topics.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { headerValue, Headers } from "../../lib/codec/envelope.ts";
import { loadConfig, withoutSecrets, type Config } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { keyspace } from "../../lib/redis.ts";
import { createKafka, openGroupAdmin, type Admin } from "../../lib/kafka/client.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { tailTopics } from "../../lib/kafka/tail.ts";
import { applyTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { cliSettings, type CliContext } from "../../services/cli/context.ts";
import { loadMix, orderApiTarget, watchEnds } from "../../services/cli/load.ts";
import { Measurement, runClosedLoop, runOpenLoop, runRamp, sustainableRate, type LoadTarget, type RampStep } from "../../services/cli/loadgen.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { ChaosEnvironment } from "../chaos/environment.ts";
import { freePort, startSystem, type RunningSystem } from "../harness/processes.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";
import { sampleProcess, usageBetween, type ProcessSample } from "./procstat.ts";
import { summarizeBrokerSamples, summarizeProfileFile, type ProfileSummary } from "./profile.ts";
import { runBacklog } from "./backlog.ts";
import { brokerRequests, type BrokerRequests } from "./broker-requests.ts";
import { measureRecordOperations, snapshotOffsets } from "./record-ops.ts";
import { loadGenerator, renderResults, type BenchResult, type Pipeline, type SagaProfile } from "./report.ts";
import { cpuMsPerOrder, repeatStartRate, requestRates, spreadOf } from "./summary.ts";

const root = join(import.meta.dirname, "..", "..");
const { values: args } = parseArgs({
  options: {
    step: { type: "string", default: "30" },
    factor: { type: "string", default: "1.2" },
    repeats: { type: "string", default: "3" },
    "fixed-rate": { type: "string", default: "100" },
    "fixed-duration": { type: "string", default: "60" },
    "start-rate": { type: "string", default: "50" },
    "bare-start-rate": { type: "string", default: "100" },
    "backlog-records": { type: "string", default: "30000" },
    "max-rate": { type: "string", default: "6000" },
    "p99-bound": { type: "string", default: "500" },
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "profile-rate": { type: "string", default: "40" },
    "profile-duration": { type: "string", default: "30" },
    out: { type: "string", default: join(root, "bench", "results") },
    render: { type: "string" },
  },
});
const quick = args.quick;
const stepS = quick ? 3 : Number(args.step);
const fixedRate = Number(args["fixed-rate"]);
const fixedS = quick ? 5 : Number(args["fixed-duration"]);
const p99BoundMs = Number(args["p99-bound"]);
const repeats = Number(args.repeats);
const rampOptions = { startRate: Number(args["start-rate"]), factor: Number(args.factor), maxRate: Number(args["max-rate"]), stepS, p99BoundMs, drainMs: 15_000 };
const bareStartRate = Number(args["bare-start-rate"]);
/** A repeat's ramp starts this many steps below the rate the first repeat sustained. */
const repeatStepsBelow = 3;
const backlogRecords = quick ? 5000 : Number(args["backlog-records"]);

/** Relay topics: the saga's four hops, each sized like orders.created. */
const relayTopics = [1, 2, 3, 4].map((n) => `bench.relay.${n}`);
/** The bench's SKUs: stock that does not run out during a run. */
const benchCatalog = [
  { sku: "bench_a", name: "Bench A", currency: "USD", priceMinor: 1999n, stock: 100_000_000 },
  { sku: "bench_b", name: "Bench B", currency: "USD", priceMinor: 4550n, stock: 100_000_000 },
];

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** What the fixed run observes besides latency: the broker's requests, and record operations for the saga. */
interface Observers {
  readonly broker: BrokerRequests;
  readonly recordOps?: { readonly admin: Admin; readonly brokers: string; readonly topics: readonly string[] };
}

function samples(pids: Readonly<Record<string, number | undefined>>): Record<string, ProcessSample | undefined> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid === undefined ? undefined : sampleProcess(pid)]));
}

/** Warm-up, not measured: consumer groups join, connections open, code paths are compiled. */
async function warmUp(name: string, target: LoadTarget, setCurrent: (m: Measurement) => void): Promise<void> {
  const warm = new Measurement(() => performance.now());
  setCurrent(warm);
  const warmed = await runClosedLoop(target, warm, { orders: 200, concurrency: 10, drainMs: 60_000 });
  say(`${name}: warmed up with ${warmed.accepted} orders (p50 ${warmed.latencyMs.p50} ms)`);
}

/** How far a ramp steps down when its start is not sustained: to a third of it (six steps of ×1.2), not below 5/s. */
const lowestRate = (from: number) => Math.max(5, from / 3);

/**
 * A ramp from `from` up (×factor a step) to its first step that is not sustained; when the very
 * first is not, it steps down (÷factor) until one is, so that a start above the limit still finds it
 * (down to a third of the start: further would make the run too long; the ramp then says 0).
 */
async function rampFrom(name: string, target: LoadTarget, setCurrent: (m: Measurement) => void, from: number): Promise<RampStep[]> {
  const now = () => performance.now();
  const onStep = (s: RampStep) => say(`${name} ${s.rate}/s: ${s.sustainable ? "sustained" : "NOT sustained"} — ${s.why}; ${s.result.throughput}/s ended`);
  const steps = await runRamp(target, now, setCurrent, { ...rampOptions, startRate: from, onStep });
  for (let rate = Math.round(from / rampOptions.factor); sustainableRate(steps) === 0 && rate >= lowestRate(from); rate = Math.round(rate / rampOptions.factor)) {
    steps.push(...(await runRamp(target, now, setCurrent, { ...rampOptions, startRate: rate, maxRate: rate, onStep })));
  }
  return steps;
}

/**
 * `repeats` ramps (the first from `startRate`, the others a few steps below what the first
 * sustained), then the fixed rate with the CPU of every process, the broker's request counts and,
 * when asked, the record operations over that run alone.
 */
async function measure(
  name: string,
  target: LoadTarget,
  setCurrent: (m: Measurement) => void,
  pids: () => Record<string, number | undefined>,
  startRate: number,
  observers: Observers,
): Promise<Pipeline> {
  const now = () => performance.now();
  await warmUp(name, target, setCurrent);
  const before = samples(pids());
  const ramps: RampStep[][] = [];
  for (let repeat = 1; repeat <= repeats; repeat += 1) {
    const from = repeat === 1 ? startRate : repeatStartRate(sustainableRate(ramps[0] ?? []), { startRate, factor: rampOptions.factor, stepsBelow: repeatStepsBelow });
    say(`${name}: ramp ${repeat} of ${repeats} from ${from}/s, ×${rampOptions.factor} every ${stepS} s, p99 bound ${p99BoundMs} ms`);
    ramps.push(await rampFrom(name, target, setCurrent, from));
  }
  const sustainableRates = ramps.map((ramp) => sustainableRate(ramp));
  const sustainable = spreadOf(sustainableRates);
  say(`${name}: sustainable ${sustainableRates.join(", ")}/s — median ${sustainable.median}/s`);
  say(`${name}: ${fixedRate}/s for ${fixedS} s`);
  const requestsBefore = await observers.broker.counts();
  const offsetsBefore = observers.recordOps === undefined ? undefined : await snapshotOffsets(observers.recordOps.admin, observers.recordOps.topics);
  const requestsFrom = now();
  const fixedBefore = samples(pids());
  const m = new Measurement(now);
  setCurrent(m);
  // A long drain: the per-order figures (CPU, requests, record operations) hold only for orders that ended.
  const fixed = await runOpenLoop(target, m, { rate: fixedRate, durationS: fixedS, drainMs: 120_000 });
  const fixedAfter = samples(pids());
  const requestsAfter = await observers.broker.counts();
  const orders = Object.values(fixed.ended).reduce((a, b) => a + b, 0);
  const requests = { seconds: Math.round(now() - requestsFrom) / 1000, rates: requestRates(requestsBefore, requestsAfter, (now() - requestsFrom) / 1000, orders) };
  const fixedUsage = usageBetween(fixedBefore, fixedAfter);
  say(`${name} ${fixedRate}/s: p50 ${fixed.latencyMs.p50} ms, p99 ${fixed.latencyMs.p99} ms, max ${fixed.latencyMs.max} ms; CPU ${cpuMsPerOrder(fixedUsage, orders, [loadGenerator])} ms per order (${cpuMsPerOrder(fixedUsage, orders)} with the load generator)`);
  say(`${name} broker requests per order: ${requests.rates.map((r) => `${r.request} ${r.perOrder}`).join(", ")}`);
  const recordOps =
    observers.recordOps === undefined || offsetsBefore === undefined
      ? undefined
      : await measureRecordOperations(observers.recordOps.admin, observers.recordOps.brokers, observers.recordOps.topics, offsetsBefore, orders);
  if (recordOps !== undefined) say(`${name}: ${recordOps.perOrder} record operations per order (${recordOps.producedPerOrder} produced, ${recordOps.consumedPerOrder} consumed)`);
  return { ramps, sustainableRates, sustainable, fixed, usage: usageBetween(before, fixedAfter), fixedUsage, requests, ...(recordOps === undefined ? {} : { recordOps }) };
}

/** Runs `work` with an idempotent publisher of the bench's own. */
async function withPublisher<T>(config: Config, work: (publisher: Publisher) => Promise<T>): Promise<T> {
  const publisher = await createPublisher(createKafka(config, createLogger("bench", "warn")), config);
  try {
    return await work(publisher);
  } finally {
    await publisher.disconnect();
  }
}

/** Starts one relay process and waits until its ops port says ready. */
async function startRelay(name: string, stages: string, env: Record<string, string>): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const opsPort = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "test", "load", "relay.ts")], {
    cwd: root,
    env: { ...process.env, ...env, OPS_PORT: String(opsPort), RELAY_STAGES: stages, INSTANCE_ID: name },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`relay ${name} exited`);
    return (await fetch(`http://127.0.0.1:${opsPort}/health/ready`)).ok;
  }, { timeoutMs: 60_000, intervalMs: 100, what: `relay ${name} to be ready` });
  return {
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** The bare pipeline: orders produced to hop 1, their ends read from hop 4. */
async function bare(config: Config, admin: Admin, infraPids: () => Record<string, number>, serviceEnv: Record<string, string>, broker: BrokerRequests): Promise<Pipeline> {
  const [t1, t2, t3, t4] = relayTopics as [string, string, string, string];
  const coordinator = await startRelay("coordinator", `${t1}>${t2},${t3}>${t4}`, serviceEnv);
  const worker = await startRelay("worker", `${t2}>${t3}`, serviceEnv);
  const publisher: Publisher = await createPublisher(createKafka(config, createLogger("bench", "warn")), config);
  let current: Measurement | undefined;
  const tail = await tailTopics(config, admin, [t4], (record) => {
    const id = headerValue(record.headers, Headers.orderId);
    if (id !== undefined) current?.ended({ id, outcome: "relayed" });
  });
  const target: LoadTarget = {
    async send() {
      const orderId = randomUUID();
      await publisher.send(t1, encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key: orderId, orderId, producer: "bench", encoding: config.encoding }));
      return orderId;
    },
  };
  try {
    return await measure("bare", target, (m) => (current = m), () => ({ ...infraPids(), "relay-coordinator": coordinator.child.pid, "relay-worker": worker.child.pid }), bareStartRate, { broker });
  } finally {
    await tail.stop();
    await publisher.disconnect();
    await coordinator.stop();
    await worker.stop();
  }
}

/**
 * Runs `work` against the saga: the services started with `nodeArgs`, orders placed through the
 * order API, their ends read from the terminal topics and handed to the current measurement.
 */
async function withSaga<T>(
  config: Config,
  serviceEnv: Record<string, string>,
  nodeArgs: readonly string[],
  work: (target: LoadTarget, setCurrent: (m: Measurement) => void, system: RunningSystem) => Promise<T>,
): Promise<T> {
  const system: RunningSystem = await startSystem(serviceEnv, { nodeArgs: [...nodeArgs] });
  const log = createLogger("bench", "warn");
  const ctx: CliContext = { config, settings: cliSettings({ ORDER_API_URL: system.apiUrl, ORDER_API_SIGNING_KEY_FILE: system.signingKeyFile }), log, kafka: createKafka(config, log), json: true };
  let current: Measurement | undefined;
  const tail = await watchEnds(ctx, () => current);
  try {
    const mix = await loadMix(ctx, { skus: benchCatalog.map((p) => p.sku).join(","), scarceSku: "", outOfStockShare: 0, declinedShare: 0.05 });
    return await work(orderApiTarget(ctx, mix), (m) => (current = m), system);
  } finally {
    await tail.stop();
    await system.stop();
  }
}

/** The saga: the ramps and the fixed rate, with the record operations of the fixed run. */
function saga(config: Config, admin: Admin, infraPids: () => Record<string, number>, serviceEnv: Record<string, string>, broker: BrokerRequests): Promise<Pipeline> {
  return withSaga(config, serviceEnv, [], (target, setCurrent, system) => {
    const pids = () => ({ ...infraPids(), mailsink: system.pidOf("mailsink"), ...Object.fromEntries(system.processes.map((name) => [name, system.pidOf(name)])) });
    const topics = desiredTopics(catalog, replication.local, "").map((t) => t.name);
    return measure("saga", target, setCurrent, pids, rampOptions.startRate, { broker, recordOps: { admin, brokers: config.kafka.brokers, topics } });
  });
}

/**
 * The saga at --profile-rate with every service under `node --cpu-prof` (a profile is written when
 * its process exits) and the broker under Java Flight Recorder, summarized per process.
 */
async function profile(config: Config, serviceEnv: Record<string, string>, brokerPid: number, date: string): Promise<SagaProfile> {
  const dir = join(args.out, "profiles", date);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const rate = Number(args["profile-rate"]);
  const durationS = quick ? 5 : Number(args["profile-duration"]);
  const brokerRecording = join(dir, "broker.jfr");
  let brokerCpu: { before?: ProcessSample; after?: ProcessSample } = {};
  const pidsByName = await withSaga(config, serviceEnv, ["--cpu-prof", `--cpu-prof-dir=${dir}`], async (target, setCurrent, system) => {
    await warmUp("profile", target, setCurrent);
    say(`profile: the saga at ${rate}/s for ${durationS} s, services under --cpu-prof, the broker under Java Flight Recorder`);
    const recording = jcmd(brokerPid, "JFR.start", "name=bench", "settings=profile", `filename=${brokerRecording}`);
    brokerCpu = { before: sampleProcess(brokerPid) };
    const m = new Measurement(() => performance.now());
    setCurrent(m);
    await runOpenLoop(target, m, { rate, durationS, drainMs: 30_000 });
    brokerCpu.after = sampleProcess(brokerPid);
    if (recording) jcmd(brokerPid, "JFR.stop", "name=bench");
    return Object.fromEntries(system.processes.map((name) => [name, system.pidOf(name)]));
  });
  const files = readdirSync(dir);
  const processes: Record<string, ProfileSummary> = {};
  if (files.includes("broker.jfr")) {
    const printed = execFileSync("jfr", ["print", "--json", "--stack-depth", "80", "--events", "jdk.ExecutionSample", brokerRecording], { maxBuffer: 1 << 30 }).toString();
    const busy = Math.round(100 * ((brokerCpu.after?.cpuSeconds ?? 0) - (brokerCpu.before?.cpuSeconds ?? 0))) / 100;
    processes["broker"] = summarizeBrokerSamples(JSON.parse(printed) as Parameters<typeof summarizeBrokerSamples>[0], busy);
  }
  for (const [name, pid] of Object.entries(pidsByName)) {
    const file = files.find((f) => f.split(".")[3] === String(pid));
    if (file !== undefined && name !== "mailsink") processes[name] = summarizeProfileFile(join(dir, file));
  }
  return { rate, durationS, processes };
}

/** Runs a JDK diagnostic command on `pid`; false (and says so) when the JDK tools are not there. */
function jcmd(pid: number, ...command: string[]): boolean {
  try {
    execFileSync("jcmd", [String(pid), ...command], { stdio: "ignore" });
    return true;
  } catch (err) {
    say(`jcmd ${command[0] ?? ""} failed (${err instanceof Error ? err.message : String(err)}); the broker is not profiled`);
    return false;
  }
}

async function main(): Promise<void> {
  const stateDir = join(root, ".run", "bench");
  // Redis as production usually runs it: append-only file, fsync once a second (a crash of Redis
  // loses nothing; a crash of the machine at most a second of writes).
  const environment = new ChaosEnvironment({ topology: "single", proxied: false, stateDir, redisFsync: "everysec" });
  say("starting a broker and Redis of its own");
  await environment.start();
  const serviceEnv = { KAFKA_BROKERS: environment.brokers, REDIS_URL: environment.redisUrl, REDIS_KEY_PREFIX: "of", LOG_LEVEL: "warn", HOME: process.env["HOME"] ?? "" };
  const config = loadConfig("bench", serviceEnv);
  const kafka = createKafka(config, createLogger("bench", "warn"));
  // Reads committed offsets (record operations, the backlog relay): over a group admin (client.ts says why).
  const offsetsAdmin = await openGroupAdmin(kafka, config, "bench-offsets");
  const admin = offsetsAdmin.admin;
  const redis = new Redis(environment.redisUrl);
  const pidIn = (file: string) => Number(readFileSync(join(stateDir, file), "utf8").trim());
  // The load generator (this process: HTTP client or producer, the tail of the end topics) shares the two cores too.
  const infraPids = () => ({ broker: pidIn(join("kafka-single", "kafka.pid")), redis: pidIn(join("redis", "redis.pid")), [loadGenerator]: process.pid });
  const startedAt = performance.now();
  try {
    await applyTopics(admin, desiredTopics(catalog, replication.local, ""));
    await applyTopics(admin, desiredTopics(relayTopics.map((name) => ({ ...topicSpec("orders.created"), name })), replication.local, ""));
    await new StockStore(redis, keyspace("of")).seedCatalog(benchCatalog);
    const date = new Date().toISOString().slice(0, 10);
    const broker = await brokerRequests(root, infraPids().broker, await freePort());
    const backlog = () =>
      withPublisher(config, (publisher) => runBacklog({ root, config, admin, publisher, serviceEnv, brokerPid: infraPids().broker, records: backlogRecords, say }));
    if (args.only === "backlog") {
      process.stdout.write(`${JSON.stringify(await backlog(), null, 2)}\n`);
      return;
    }
    if (args.only === "profile") {
      // A tuning run: figures on stdout, no report.
      process.stdout.write(`${JSON.stringify(await profile(config, serviceEnv, infraPids().broker, date), null, 2)}\n`);
      return;
    }
    if (args.only !== undefined) {
      const only = args.only === "bare" ? await bare(config, admin, infraPids, serviceEnv, broker) : await saga(config, admin, infraPids, serviceEnv, broker);
      process.stdout.write(`${JSON.stringify({ ...only, ramps: undefined, fixed: { ...only.fixed, seconds: undefined } }, null, 2)}\n`);
      return;
    }
    const backlogResult = await backlog();
    const bareResult = await bare(config, admin, infraPids, serviceEnv, broker);
    const sagaResult = await saga(config, admin, infraPids, serviceEnv, broker);
    const sagaProfile = await profile(config, serviceEnv, infraPids().broker, date);
    mkdirSync(args.out, { recursive: true });
    const result: BenchResult = {
      date,
      durationS: Math.round((performance.now() - startedAt) / 1000),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "", memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
      settings: { ...rampOptions, bareStartRate, repeats, repeatStepsBelow, fixedRate, fixedS, producer: withoutSecrets(config.kafka.producer), consumer: withoutSecrets(config.kafka.consumer), transactions: config.transactions },
      backlog: backlogResult,
      saga: sagaResult,
      bare: bareResult,
      profile: sagaProfile,
    };
    const base = join(args.out, quick ? `${date}-quick` : date);
    renderResults(base, result, join(root, "bench", "tuning.md"));
    say(`report: ${base}.md (the run took ${Math.round(result.durationS / 60)} min)`);
  } finally {
    redis.disconnect();
    await offsetsAdmin.close();
    await environment.close();
  }
}

const run = args.render === undefined ? main() : Promise.resolve(renderResults(args.render.replace(/\.json$/, ""), JSON.parse(readFileSync(args.render, "utf8")) as BenchResult, join(root, "bench", "tuning.md")));

run.then(
  () => process.exit(0),
  (err: unknown) => {
    say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
