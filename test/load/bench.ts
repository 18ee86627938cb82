/**
 * `make bench`: the saga against the bare pipeline, on a broker and Redis of its own with
 * production settings (acks=all, idempotence, transactions). For each: a ramp to the highest
 * sustainable rate (p99 under the bound, no growing backlog) and 100 orders/s for 60 s, with CPU
 * seconds and peak RSS of every process (broker, Redis, each service or relay). Writes
 * bench/results/<date>.json, a Markdown report and SVG charts beside it.
 *
 *   tsx test/load/bench.ts [--step S] [--fixed-duration S] [--max-rate R] [--quick] [--only saga|bare|profile]
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
import { loadConfig, type Config } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { keyspace } from "../../lib/redis.ts";
import { createKafka, type Admin } from "../../lib/kafka/client.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { tailTopics } from "../../lib/kafka/tail.ts";
import { applyTopics, desiredTopics } from "../../lib/kafka/topics.ts";
import { cliSettings, type CliContext } from "../../services/cli/context.ts";
import { loadMix, orderApiTarget, watchEnds } from "../../services/cli/load.ts";
import { Measurement, runClosedLoop, runOpenLoop, runRamp, sustainableRate, type LoadTarget, type RampStep, type RunResult } from "../../services/cli/loadgen.ts";
import { StockStore } from "../../services/inventory/stock.ts";
import { ChaosEnvironment } from "../chaos/environment.ts";
import { freePort, startSystem, type RunningSystem } from "../harness/processes.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";
import { sampleProcess, usageBetween, type ProcessSample } from "./procstat.ts";
import { summarizeBrokerSamples, summarizeProfileFile, type ProfileSummary } from "./profile.ts";
import { renderResults, type BenchResult, type SagaProfile } from "./report.ts";

const root = join(import.meta.dirname, "..", "..");
const { values: args } = parseArgs({
  options: {
    step: { type: "string", default: "20" },
    "fixed-rate": { type: "string", default: "100" },
    "fixed-duration": { type: "string", default: "60" },
    "start-rate": { type: "string", default: "20" },
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
const rampOptions = { startRate: Number(args["start-rate"]), factor: 1.5, maxRate: Number(args["max-rate"]), stepS, p99BoundMs, drainMs: 15_000 };

/** Relay topics: the saga's four hops, each sized like orders.created. */
const relayTopics = [1, 2, 3, 4].map((n) => `bench.relay.${n}`);
/** The bench's SKUs: stock that does not run out during a run. */
const benchCatalog = [
  { sku: "bench_a", name: "Bench A", currency: "USD", priceMinor: 1999n, stock: 100_000_000 },
  { sku: "bench_b", name: "Bench B", currency: "USD", priceMinor: 4550n, stock: 100_000_000 },
];

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** What one pipeline measured. */
interface PipelineResult {
  readonly ramp: readonly RampStep[];
  readonly sustainableRate: number;
  readonly fixed: RunResult;
  readonly usage: Record<string, { cpuSeconds: number; peakRssMb: number }>;
}

function samples(pids: Readonly<Record<string, number | undefined>>): Record<string, ProcessSample | undefined> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid === undefined ? undefined : sampleProcess(pid)]));
}

/** Ramp, then the fixed rate, against one target; `watch` hands the ends to the current measurement. */
/** Warm-up, not measured: consumer groups join, connections open, code paths are compiled. */
async function warmUp(name: string, target: LoadTarget, setCurrent: (m: Measurement) => void): Promise<void> {
  const warm = new Measurement(() => performance.now());
  setCurrent(warm);
  const warmed = await runClosedLoop(target, warm, { orders: 200, concurrency: 10, drainMs: 60_000 });
  say(`${name}: warmed up with ${warmed.accepted} orders (p50 ${warmed.latencyMs.p50} ms)`);
}

async function measure(name: string, target: LoadTarget, setCurrent: (m: Measurement) => void, pids: () => Record<string, number | undefined>): Promise<PipelineResult> {
  const now = () => performance.now();
  await warmUp(name, target, setCurrent);
  const before = samples(pids());
  say(`${name}: ramp from ${rampOptions.startRate}/s, ×${rampOptions.factor} every ${stepS} s, p99 bound ${p99BoundMs} ms`);
  const ramp = await runRamp(target, now, setCurrent, {
    ...rampOptions,
    onStep: (s) => say(`${name} ${s.rate}/s: ${s.sustainable ? "sustained" : "NOT sustained"} — ${s.why}; ${s.result.throughput}/s ended`),
  });
  say(`${name}: ${fixedRate}/s for ${fixedS} s`);
  const m = new Measurement(now);
  setCurrent(m);
  const fixed = await runOpenLoop(target, m, { rate: fixedRate, durationS: fixedS, drainMs: 30_000 });
  say(`${name} ${fixedRate}/s: p50 ${fixed.latencyMs.p50} ms, p99 ${fixed.latencyMs.p99} ms, max ${fixed.latencyMs.max} ms`);
  return { ramp, sustainableRate: sustainableRate(ramp), fixed, usage: usageBetween(before, samples(pids())) };
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
async function bare(config: Config, admin: Admin, infraPids: () => Record<string, number>, serviceEnv: Record<string, string>): Promise<PipelineResult> {
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
    return await measure("bare", target, (m) => (current = m), () => ({ ...infraPids(), "relay-coordinator": coordinator.child.pid, "relay-worker": worker.child.pid }));
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
  const ctx: CliContext = { config, settings: cliSettings({ ORDER_API_URL: system.apiUrl }), log, kafka: createKafka(config, log), json: true };
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

/** The saga: the ramp and the fixed rate. */
function saga(config: Config, infraPids: () => Record<string, number>, serviceEnv: Record<string, string>): Promise<PipelineResult> {
  return withSaga(config, serviceEnv, [], (target, setCurrent, system) => {
    const pids = () => ({ ...infraPids(), ...Object.fromEntries(system.processes.map((name) => [name, system.pidOf(name)])) });
    return measure("saga", target, setCurrent, pids);
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
  const admin = kafka.admin();
  await admin.connect();
  const redis = new Redis(environment.redisUrl);
  const pidIn = (file: string) => Number(readFileSync(join(stateDir, file), "utf8").trim());
  // The load generator (this process: HTTP client or producer, the tail of the end topics) shares the two cores too.
  const infraPids = () => ({ broker: pidIn(join("kafka-single", "kafka.pid")), redis: pidIn(join("redis", "redis.pid")), "load generator": process.pid });
  try {
    await applyTopics(admin, desiredTopics(catalog, replication.local, ""));
    await applyTopics(admin, desiredTopics(relayTopics.map((name) => ({ ...topicSpec("orders.created"), name })), replication.local, ""));
    await new StockStore(redis, keyspace("of")).seedCatalog(benchCatalog);
    const date = new Date().toISOString().slice(0, 10);
    if (args.only === "profile") {
      // A tuning run: figures on stdout, no report.
      process.stdout.write(`${JSON.stringify(await profile(config, serviceEnv, infraPids().broker, date), null, 2)}\n`);
      return;
    }
    if (args.only !== undefined) {
      const only = args.only === "bare" ? await bare(config, admin, infraPids, serviceEnv) : await saga(config, infraPids, serviceEnv);
      process.stdout.write(`${JSON.stringify({ sustainableRate: only.sustainableRate, fixed: { ...only.fixed, seconds: undefined }, usage: only.usage }, null, 2)}\n`);
      return;
    }
    const bareResult = await bare(config, admin, infraPids, serviceEnv);
    const sagaResult = await saga(config, infraPids, serviceEnv);
    const sagaProfile = await profile(config, serviceEnv, infraPids().broker, date);
    mkdirSync(args.out, { recursive: true });
    const result = {
      date,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "", memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
      settings: { ...rampOptions, fixedRate, fixedS, producer: config.kafka.producer, consumer: config.kafka.consumer, transactions: config.transactions },
      saga: sagaResult,
      bare: bareResult,
      profile: sagaProfile,
    };
    const base = join(args.out, quick ? `${date}-quick` : date);
    renderResults(base, result, join(root, "bench", "tuning.md"));
    say(`report: ${base}.md`);
  } finally {
    redis.disconnect();
    await admin.disconnect();
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
