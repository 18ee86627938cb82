/**
 * The benchmark's arithmetic, apart from the processes it measures: the median and spread of
 * repeated ramps, where a repeat's ramp starts, CPU per order, the figures of a backlog relay run,
 * the broker's request rates from JMX counters, and record operations per order.
 */

/** The median and the range of repeated measurements. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spreadOf(values: readonly number[]): Spread {
  if (values.length === 0) return { median: 0, min: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}

/**
 * Where a repeat's ramp starts: `stepsBelow` steps under the rate the first repeat sustained, so
 * that a repeat does not walk again through the rates far below the limit; never under the first
 * repeat's start.
 */
export function repeatStartRate(firstSustained: number, options: { startRate: number; factor: number; stepsBelow: number }): number {
  return Math.max(options.startRate, Math.round(firstSustained / options.factor ** options.stepsBelow));
}

export type Usage = Readonly<Record<string, { readonly cpuSeconds: number; readonly peakRssMb: number }>>;

/** CPU milliseconds per order of every process in `usage` except those named in `without`. */
export function cpuMsPerOrder(usage: Usage, orders: number, without: readonly string[] = []): number {
  if (orders <= 0) return 0;
  const seconds = Object.entries(usage).reduce((sum, [name, u]) => (without.includes(name) ? sum : sum + u.cpuSeconds), 0);
  return round((seconds * 1000) / orders, 3);
}

/** What one relay's run over the backlog left behind, as counted and sampled. */
export interface RelayRun {
  readonly relay: string;
  /** Records in the backlog. */
  readonly expected: number;
  /** Committed records read back from the output topic. */
  readonly records: number;
  /** Distinct keys among them (each backlog record has its own key). */
  readonly distinctKeys: number;
  /** Broker (log append) timestamps of the first and last output record, ms. */
  readonly firstTimestampMs: number;
  readonly lastTimestampMs: number;
  /** CPU the relay process used from its start (start-up included) until it had relayed everything. */
  readonly relayCpuSeconds: number;
  /** CPU the broker used over the same time. */
  readonly brokerCpuSeconds: number;
  /** From the relay's start until its consumer group had committed the whole backlog. */
  readonly wallSeconds: number;
  /** Why the relay did not finish (it exited, or did not commit the backlog in time); empty when it did. */
  readonly unfinished?: string;
}

export interface RelayFigures extends RelayRun {
  readonly recordsPerSecond: number;
  readonly relayCpuMsPerRecord: number;
  readonly brokerCpuMsPerRecord: number;
  /** Empty when every record came out once; otherwise what went wrong (a failed run). */
  readonly problem: string;
}

export function relayFigures(run: RelayRun): RelayFigures {
  const spanS = (run.lastTimestampMs - run.firstTimestampMs) / 1000;
  const problems = [
    run.unfinished ?? "",
    run.records < run.expected ? `${run.expected - run.records} records lost` : "",
    run.records > run.distinctKeys ? `${run.records - run.distinctKeys} records duplicated` : "",
    run.distinctKeys < run.expected && run.records >= run.expected ? `${run.expected - run.distinctKeys} keys missing` : "",
  ].filter((p) => p !== "");
  const perRecord = (seconds: number) => (run.records > 0 ? round((seconds * 1000) / run.records, 4) : 0);
  return {
    ...run,
    recordsPerSecond: spanS > 0 ? Math.round(run.records / spanS) : 0,
    relayCpuMsPerRecord: perRecord(run.relayCpuSeconds),
    brokerCpuMsPerRecord: perRecord(run.brokerCpuSeconds),
    problem: problems.join(", "),
  };
}

/** Ours over the peer's: records/s, relay CPU and broker CPU per record. */
export function relayRatio(ours: RelayFigures, peer: RelayFigures) {
  const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : 0);
  return {
    recordsPerSecond: ratio(ours.recordsPerSecond, peer.recordsPerSecond),
    relayCpuMsPerRecord: ratio(ours.relayCpuMsPerRecord, peer.relayCpuMsPerRecord),
    brokerCpuMsPerRecord: ratio(ours.brokerCpuMsPerRecord, peer.brokerCpuMsPerRecord),
  };
}

/** The broker requests the report shows, as `request=` tags of kafka.network RequestMetrics. */
export const reportedRequests = ["Produce", "Fetch", "EndTxn", "AddPartitionsToTxn", "WriteTxnMarkers", "AddOffsetsToTxn", "TxnOffsetCommit"] as const;

/**
 * Request counts by request type from Kafka's JmxTool (`--report-format csv`, one line per
 * attribute: `<object name>:Count,"<value>"`); counts of the same request in several API versions
 * are added up.
 */
export function parseRequestCounts(output: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of output.split("\n")) {
    const match = /^kafka\.network:(.*):Count,"([\d.E]+)"$/.exec(line.trim());
    if (match === null) continue;
    const tags = Object.fromEntries((match[1] ?? "").split(",").map((pair) => pair.split("=") as [string, string]));
    if (tags["type"] !== "RequestMetrics" || tags["name"] !== "RequestsPerSec" || tags["request"] === undefined) continue;
    counts[tags["request"]] = (counts[tags["request"]] ?? 0) + Number(match[2]);
  }
  return counts;
}

/** Requests per second and per order between two readings of the counters. */
export function requestRates(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, seconds: number, orders: number) {
  return reportedRequests.map((request) => {
    const count = (after[request] ?? 0) - (before[request] ?? 0);
    return { request, count, perSecond: seconds > 0 ? round(count / seconds, 1) : 0, perOrder: orders > 0 ? round(count / orders, 3) : 0 };
  });
}

export type RequestRate = ReturnType<typeof requestRates>[number];

/** How many of the sorted `offsets` lie in [from, to). */
export function countBetween(offsets: readonly number[], from: number, to: number): number {
  const firstAtLeast = (value: number) => {
    let low = 0;
    let high = offsets.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((offsets[mid] ?? 0) < value) low = mid + 1;
      else high = mid;
    }
    return low;
  };
  return to <= from ? 0 : firstAtLeast(to) - firstAtLeast(from);
}

/** Record operations per order: records produced per topic and consumed per consumer group. */
export function recordOperations(produced: Readonly<Record<string, number>>, consumed: Readonly<Record<string, number>>, orders: number) {
  const per = (n: number) => (orders > 0 ? round(n / orders, 2) : 0);
  const rows = (counts: Readonly<Record<string, number>>) =>
    Object.entries(counts)
      .filter(([, n]) => n > 0)
      .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
      .map(([name, records]) => ({ name, records, perOrder: per(records) }));
  const total = (counts: Readonly<Record<string, number>>) => Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    orders,
    produced: rows(produced),
    consumed: rows(consumed),
    producedPerOrder: per(total(produced)),
    consumedPerOrder: per(total(consumed)),
    perOrder: per(total(produced) + total(consumed)),
  };
}

export type RecordOperations = ReturnType<typeof recordOperations>;

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
