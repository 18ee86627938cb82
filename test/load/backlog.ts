/**
 * The backlog relay test: one transactional consume → produce hop over a backlog of OrderCreated
 * records, run by our relay (test/load/relay.ts, the services' runtime) and by Kafka Streams
 * (test/load/streams/StreamsRelay.java, exactly_once_v2, one stream thread, its defaults) over the
 * same input topic, each into a fresh output topic whose records carry the broker's append time.
 *
 * A relay is done when its consumer group has committed the whole input; then its process's CPU
 * (start-up included) and the broker's CPU since the relay started are read from /proc, the relay
 * is stopped, and its output is read back and counted: every record once, or the run failed (as
 * it does when the relay exits or has not committed the backlog within 10 minutes).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import type { Config } from "../../lib/config.ts";
import type { Admin } from "../../lib/kafka/client.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { freePort } from "../harness/processes.ts";
import { sampleOf } from "../harness/samples.ts";
import { waitFor } from "../harness/wait.ts";
import { sampleProcess } from "./procstat.ts";
import { relayFigures, relayRatio, type RelayFigures } from "./summary.ts";
import { readRanges } from "./topic-reader.ts";

const PARTITIONS = 6;
const SENDS_IN_FLIGHT = 2000;

export interface BacklogResult {
  readonly records: number;
  readonly partitions: number;
  readonly ours: RelayFigures;
  readonly streams: RelayFigures;
  /** Ours over Kafka Streams'. */
  readonly ratio: ReturnType<typeof relayRatio>;
}

interface BacklogContext {
  readonly root: string;
  readonly config: Config;
  readonly admin: Admin;
  readonly publisher: Publisher;
  /** The environment our relay runs with (broker, Redis, log level). */
  readonly serviceEnv: Readonly<Record<string, string>>;
  readonly brokerPid: number;
  readonly records: number;
  readonly say: (line: string) => void;
}

async function createTopic(admin: Admin, topic: string, configs: Record<string, string> = {}): Promise<void> {
  await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1, configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })) }],
  });
}

/** Fills `topic` with `records` OrderCreated records, encoded and keyed as the bench's orders are. */
async function fillBacklog(ctx: BacklogContext, topic: string): Promise<void> {
  for (let sent = 0; sent < ctx.records; sent += SENDS_IN_FLIGHT) {
    const batch = Array.from({ length: Math.min(SENDS_IN_FLIGHT, ctx.records - sent) }, () => {
      const orderId = randomUUID();
      return ctx.publisher.send(topic, encodeRecord(OrderCreatedSchema, sampleOf(OrderCreatedSchema, orderId), { key: orderId, orderId, producer: "bench", encoding: ctx.config.encoding }));
    });
    await Promise.all(batch);
  }
}

/** Consumer groups that have committed offsets on `topic`. */
async function groupsOn(admin: Admin, topic: string): Promise<Map<string, number>> {
  const committed = new Map<string, number>();
  for (const { groupId } of (await admin.listGroups()).groups) {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const total = (entry?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    if (total > 0) committed.set(groupId, total);
  }
  return committed;
}

function stop(child: ChildProcess, deadlineMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Runs one relay process over the backlog in `input` into a fresh `output` and measures it. */
async function measureRelay(ctx: BacklogContext, relay: string, input: string, output: string, launch: () => ChildProcess): Promise<RelayFigures> {
  await createTopic(ctx.admin, output, { "message.timestamp.type": "LogAppendTime" });
  const groupsBefore = new Set((await groupsOn(ctx.admin, input)).keys());
  const brokerBefore = sampleProcess(ctx.brokerPid);
  const startedAt = performance.now();
  const child = launch();
  let relayCpuSeconds = 0;
  let brokerCpuSeconds = 0;
  let wallSeconds = 0;
  let unfinished = "";
  try {
    // Done when a group of this relay has committed every input record.
    await waitFor(
      async () => {
        if (child.exitCode !== null) return `it exited with ${child.exitCode}`;
        const committed = [...(await groupsOn(ctx.admin, input))].filter(([group]) => !groupsBefore.has(group));
        return committed.some(([, total]) => total >= ctx.records) && "done";
      },
      { timeoutMs: 600_000, intervalMs: 200, what: `${relay} to relay the backlog` },
    ).then(
      (outcome) => (unfinished = outcome === "done" ? "" : outcome),
      (err: unknown) => (unfinished = err instanceof Error ? err.message : String(err)),
    );
    wallSeconds = Math.round(performance.now() - startedAt) / 1000;
    relayCpuSeconds = sampleProcess(child.pid ?? -1)?.cpuSeconds ?? 0;
    brokerCpuSeconds = (sampleProcess(ctx.brokerPid)?.cpuSeconds ?? 0) - (brokerBefore?.cpuSeconds ?? 0);
  } finally {
    await stop(child);
  }
  let records = 0;
  let firstTimestampMs = Infinity;
  let lastTimestampMs = -Infinity;
  const keys = new Set<string>();
  const ranges = (await ctx.admin.fetchTopicOffsets(output)).map((mark) => ({ topic: output, partition: mark.partition, from: Number(mark.low), to: Number(mark.high) }));
  await readRanges(ctx.config.kafka.brokers, ranges, "read_committed", (message) => {
    records += 1;
    keys.add(String(message.key));
    firstTimestampMs = Math.min(firstTimestampMs, message.timestamp ?? Infinity);
    lastTimestampMs = Math.max(lastTimestampMs, message.timestamp ?? -Infinity);
  });
  const figures = relayFigures({
    relay,
    expected: ctx.records,
    records,
    distinctKeys: keys.size,
    firstTimestampMs: records > 0 ? firstTimestampMs : 0,
    lastTimestampMs: records > 0 ? lastTimestampMs : 0,
    relayCpuSeconds: Math.round(relayCpuSeconds * 100) / 100,
    brokerCpuSeconds: Math.round(brokerCpuSeconds * 100) / 100,
    wallSeconds,
    unfinished,
  });
  ctx.say(
    `backlog ${relay}: ${figures.records} records relayed (${figures.distinctKeys} distinct), ${figures.recordsPerSecond} records/s, ` +
      `relay CPU ${figures.relayCpuMsPerRecord} ms/record (start-up included), broker CPU ${figures.brokerCpuMsPerRecord} ms/record` +
      (figures.problem === "" ? "" : ` — FAILED RUN: ${figures.problem}`),
  );
  return figures;
}

/** Both relays over one backlog of `ctx.records` records. */
export async function runBacklog(ctx: BacklogContext): Promise<BacklogResult> {
  const run = Date.now().toString(36);
  const input = `bench.backlog.${run}.in`;
  await createTopic(ctx.admin, input);
  ctx.say(`backlog: ${ctx.records} OrderCreated records into ${input} (${PARTITIONS} partitions)`);
  await fillBacklog(ctx, input);
  const classpath = execFileSync("bash", [join(ctx.root, "test", "load", "streams", "build.sh")], { stdio: ["ignore", "pipe", "inherit"] }).toString().trim();
  const opsPort = await freePort();
  const ours = await measureRelay(ctx, "orderflow relay", input, `bench.backlog.${run}.out.orderflow`, () =>
    spawn(process.execPath, ["--import", "tsx", join(ctx.root, "test", "load", "relay.ts")], {
      cwd: ctx.root,
      env: { ...process.env, ...ctx.serviceEnv, OPS_PORT: String(opsPort), RELAY_STAGES: `${input}>bench.backlog.${run}.out.orderflow`, INSTANCE_ID: "backlog" },
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
  const streams = await measureRelay(ctx, "Kafka Streams", input, `bench.backlog.${run}.out.streams`, () =>
    spawn("java", ["-cp", classpath, "StreamsRelay", ctx.config.kafka.brokers, `bench-streams-relay-${run}`, input, `bench.backlog.${run}.out.streams`], {
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
  const ratio = relayRatio(ours, streams);
  ctx.say(`backlog ours / Kafka Streams: records/s ${ratio.recordsPerSecond}×, relay CPU per record ${ratio.relayCpuMsPerRecord}×, broker CPU per record ${ratio.brokerCpuMsPerRecord}×`);
  return { records: ctx.records, partitions: PARTITIONS, ours, streams, ratio };
}
