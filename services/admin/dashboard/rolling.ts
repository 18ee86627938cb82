/**
 * Rolling per-second figures for the dashboard: how many orders were created, completed, failed and
 * cancelled in each of the last N seconds, and an HDR histogram of end-to-end latency per second,
 * merged on demand into percentiles over the window. Fixed memory: N buckets, reused as time moves.
 * Pure (time is passed in), so it is unit-tested without a clock.
 */
import { build, type Histogram } from "hdr-histogram-js";

/** What an order event counts as. */
export type Outcome = "created" | "completed" | "failed" | "cancelled";

export const outcomes: readonly Outcome[] = ["created", "completed", "failed", "cancelled"];

/** One second of the throughput chart. */
export interface SecondCounts {
  /** Unix seconds. */
  readonly second: number;
  readonly created: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** Latency percentiles in milliseconds; all 0 when nothing ended in the window. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Latencies above this (one hour) are recorded as this. */
const HIGHEST_MS = 3_600_000;

interface Bucket {
  second: number;
  counts: Record<Outcome, number>;
  latency: Histogram;
}

const histogram = () => build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_MS, numberOfSignificantValueDigits: 3 });

/** The last `windowSeconds` seconds of order outcomes and latencies. */
export class RollingWindow {
  readonly #buckets: Bucket[];
  readonly #merged = histogram();

  constructor(readonly windowSeconds = 60) {
    this.#buckets = Array.from({ length: windowSeconds }, () => ({ second: -1, counts: zero(), latency: histogram() }));
  }

  /** Counts one outcome in the second of `atMs`; ignored when that second is outside the window ending at `nowMs`. */
  count(outcome: Outcome, atMs: number, nowMs: number): void {
    const bucket = this.#bucket(atMs, nowMs);
    if (bucket !== undefined) bucket.counts[outcome] += 1;
  }

  /** Records one order's end-to-end latency in the second it ended (`atMs`). */
  latency(ms: number, atMs: number, nowMs: number): void {
    this.#bucket(atMs, nowMs)?.latency.recordValue(Math.min(Math.max(Math.round(ms), 0), HIGHEST_MS));
  }

  /** Counts per second of the window ending at `nowMs`, oldest first, every second present. */
  throughput(nowMs: number): SecondCounts[] {
    const now = Math.floor(nowMs / 1000);
    return Array.from({ length: this.windowSeconds }, (_, i) => {
      const second = now - this.windowSeconds + 1 + i;
      const bucket = this.#buckets[this.#slot(second)];
      return { second, ...(bucket?.second === second ? bucket.counts : zero()) };
    });
  }

  /** Percentiles of the latencies recorded in the window ending at `nowMs`. */
  latencySummary(nowMs: number): LatencySummary {
    const now = Math.floor(nowMs / 1000);
    this.#merged.reset();
    for (const bucket of this.#buckets) {
      if (bucket.second > now - this.windowSeconds && bucket.second <= now) this.#merged.add(bucket.latency);
    }
    const merged = this.#merged;
    if (merged.totalCount === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
    return {
      count: merged.totalCount,
      p50: merged.getValueAtPercentile(50),
      p90: merged.getValueAtPercentile(90),
      p99: merged.getValueAtPercentile(99),
      max: merged.maxValue,
    };
  }

  #slot(second: number): number {
    return ((second % this.windowSeconds) + this.windowSeconds) % this.windowSeconds;
  }

  /** The bucket of `atMs`'s second, recycled if it held an older second; undefined outside the window. */
  #bucket(atMs: number, nowMs: number): Bucket | undefined {
    const now = Math.floor(nowMs / 1000);
    // A producer clock slightly ahead of ours counts as now.
    const second = Math.min(Math.floor(atMs / 1000), now);
    if (second <= now - this.windowSeconds) return undefined;
    const bucket = this.#buckets[this.#slot(second)];
    if (bucket === undefined) return undefined;
    if (bucket.second !== second) {
      bucket.second = second;
      bucket.counts = zero();
      bucket.latency.reset();
    }
    return bucket;
  }
}

function zero(): Record<Outcome, number> {
  return { created: 0, completed: 0, failed: 0, cancelled: 0 };
}
