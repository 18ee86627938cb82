/**
 * Where a process's CPU time went, from a V8 CPU profile (`node --cpu-prof`): each sample's time
 * goes to the part of the system its innermost frame with a source belongs to (the Kafka client,
 * protobuf, protovalidate, OpenTelemetry, ioredis, logging, our own code, the Node runtime), or to
 * garbage collection; idle time is left out. Also the functions with the most time of their own.
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
  [/node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free)/, "logging (pino)"],
  [/node_modules\/(prom-client|tdigest|bintrees)\//, "metrics (prom-client)"],
  [/node_modules\/(cockatiel|uuid)\//, "other libraries"],
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
    // Native frames have no source: the time belongs to whoever called them.
    let part = frame.functionName === GC ? "garbage collection" : undefined;
    for (let at: number | undefined = id; part === undefined && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)?.callFrame.url ?? "";
      if (url !== "") part = partOf(url);
    }
    part ??= "V8 and native (no JavaScript caller)";
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
