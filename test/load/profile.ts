/**
 * Where a process's CPU time went, from a V8 CPU profile (`node --cpu-prof`): each sample's time
 * goes to the part of the system that asked for the work — the innermost frame on its stack from a
 * library or our own code (the Kafka client, protobuf, protovalidate, OpenTelemetry, ioredis,
 * logging, orderflow), so a socket write counts for the client that wrote — or to garbage
 * collection; idle time is left out. Also the functions with the most time of their own. The
 * broker's Java Flight Recorder samples are sorted by the kind of request they serve.
 */
import { readFileSync } from "node:fs";

/** The parts of a .cpuprofile file read here. */
interface CpuProfile {
  readonly nodes: readonly { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: readonly number[] }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A process's busy time split by part, shares in per cent of its busy time. */
export interface ProfileSummary {
  readonly busySeconds: number;
  readonly parts: Readonly<Record<string, number>>;
  readonly topFunctions: readonly { readonly name: string; readonly share: number }[];
}

/** Parts of the system, by the package (or place) a source URL is in; the first that matches wins. */
const partsByUrl: readonly (readonly [RegExp, string])[] = [
  [/node_modules\/@confluentinc\/kafka-javascript\//, "Kafka client (JS layer and native calls)"],
  [/node_modules\/@bufbuild\/(protovalidate|cel)/, "protovalidate"],
  [/node_modules\/@bufbuild\/protobuf\//, "protobuf encode/decode"],
  [/node_modules\/@opentelemetry\//, "OpenTelemetry"],
  [/node_modules\/(ioredis|redis-parser|@ioredis|denque|cluster-key-slot|standard-as-callback)\//, "ioredis"],
  [/node_modules\/(pino|@pinojs|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free)/, "logging (pino)"],
  [/node_modules\/(nodemailer|smtp-server)\//, "SMTP (nodemailer)"],
  [/node_modules\/(tsx|esbuild)\//, "TypeScript loader (tsx, at start-up)"],
  [/node_modules\/(prom-client|tdigest|bintrees)\//, "metrics (prom-client)"],
  [/node_modules\//, "other libraries"],
  [/^node:/, "Node runtime (streams, sockets, timers)"],
];

/** The part a frame with source `url` belongs to. */
export function partOf(url: string): string {
  for (const [pattern, part] of partsByUrl) if (pattern.test(url)) return part;
  return "orderflow code";
}

const GC = "(garbage collector)";
const IDLE = "(idle)";

/** Summarizes one profile: busy seconds, shares per part, the `top` functions by self time. */
export function summarizeProfile(profile: CpuProfile, top = 5): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, micros] of selfTime) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined || frame.functionName === IDLE) continue;
    busy += micros;
    // Native frames and Node's own modules (sockets, streams) work for whoever called them: the
    // time goes to the nearest library or module of ours on the stack, else to the runtime.
    let part = frame.functionName === GC ? "garbage collection" : undefined;
    let runtime: string | undefined;
    for (let at: number | undefined = id; part === undefined && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)?.callFrame.url ?? "";
      if (url.startsWith("node:")) runtime ??= partOf(url);
      else if (url !== "") part = partOf(url);
    }
    part ??= runtime ?? "V8 and native (no JavaScript caller)";
    parts.set(part, (parts.get(part) ?? 0) + micros);
    const where = frame.url === "" ? "" : ` (${frame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(lib|services|test)\//, "$1/")}:${frame.lineNumber + 1})`;
    const name = `${frame.functionName || "(anonymous)"}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + micros);
  }
  const share = (micros: number) => (busy === 0 ? 0 : Math.round((1000 * micros) / busy) / 10);
  return {
    busySeconds: Math.round(busy / 1e4) / 100,
    parts: Object.fromEntries([...parts].sort((a, b) => b[1] - a[1]).map(([part, micros]) => [part, share(micros)])),
    topFunctions: [...functions].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, micros]) => ({ name, share: share(micros) })),
  };
}

/** Reads and summarizes a .cpuprofile file. */
export function summarizeProfileFile(path: string, top?: number): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(path, "utf8")) as CpuProfile, top);
}

/** The parts of `jfr print --json` output read here. */
interface JfrSamples {
  readonly recording: {
    readonly events: readonly {
      readonly values: {
        readonly sampledThread: { readonly javaName: string };
        readonly stackTrace: { readonly frames: readonly { readonly method: { readonly name: string; readonly type: { readonly name: string } } }[] };
      };
    }[];
  };
}

/** Broker work by what a request or thread does, from the names on its stack. */
const brokerParts: readonly (readonly [RegExp, string])[] = [
  [/handleFetchRequest|DelayedFetch|tryCompleteActions|executor-Fetch|ExpirationReaper-\d+-Fetch/, "serving fetches (consumers and their long polls)"],
  [/handleProduceRequest/, "appending produced records"],
  [/Txn|Transaction/, "transactions (partitions, offsets, end, markers)"],
  [/group-coordinator|OffsetCommit|Heartbeat|JoinGroup|SyncGroup|ConsumerGroup/, "consumer groups and offsets"],
  [/network-thread/, "network threads (requests in and out)"],
];

/**
 * Summarizes the broker's execution samples (`jfr print --json --events jdk.ExecutionSample`):
 * shares of sampled Java time by kind of work, and the costliest methods by own samples.
 */
export function summarizeBrokerSamples(samples: JfrSamples, busySeconds: number, top = 5): ProfileSummary {
  const parts = new Map<string, number>();
  const methods = new Map<string, number>();
  const events = samples.recording.events;
  for (const { values } of events) {
    const frames = values.stackTrace.frames.map((f) => `${f.method.type.name.split("/").pop() ?? ""}.${f.method.name}`);
    const outermostHandler = [...frames].reverse().find((f) => f.startsWith("KafkaApis.handle") && f !== "KafkaApis.handle");
    // A request handler's work is the request's; other threads' by their name and stack.
    const says = outermostHandler ?? [values.sampledThread.javaName, ...frames].join(" ");
    const part = brokerParts.find(([pattern]) => pattern.test(says))?.[1] ?? "other";
    parts.set(part, (parts.get(part) ?? 0) + 1);
    const own = frames[0];
    if (own !== undefined) methods.set(own, (methods.get(own) ?? 0) + 1);
  }
  const share = (n: number) => (events.length === 0 ? 0 : Math.round((1000 * n) / events.length) / 10);
  return {
    busySeconds,
    parts: Object.fromEntries([...parts].sort((a, b) => b[1] - a[1]).map(([part, n]) => [part, share(n)])),
    topFunctions: [...methods].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, n]) => ({ name, share: share(n) })),
  };
}
