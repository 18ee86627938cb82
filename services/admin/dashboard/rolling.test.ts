import { describe, expect, it } from "vitest";
import { RollingWindow } from "./rolling.ts";

const T0 = 1_700_000_000_000;

describe("rolling window", () => {
  it("counts outcomes per second, oldest first, with every second of the window present", () => {
    const window = new RollingWindow(5);
    window.count("created", T0, T0);
    window.count("created", T0 + 200, T0 + 200);
    window.count("completed", T0 + 2_000, T0 + 2_000);
    const series = window.throughput(T0 + 2_500);
    expect(series.map((s) => s.second)).toEqual([0, 1, 2, 3, 4].map((i) => T0 / 1000 - 2 + i));
    expect(series[2]).toMatchObject({ created: 2, completed: 0 });
    expect(series[4]).toMatchObject({ created: 0, completed: 1, failed: 0, cancelled: 0 });
  });

  it("forgets seconds that left the window and ignores events older than it", () => {
    const window = new RollingWindow(5);
    window.count("failed", T0, T0);
    window.count("failed", T0 - 10_000, T0);
    expect(window.throughput(T0).reduce((sum, s) => sum + s.failed, 0)).toBe(1);
    // Five seconds later the bucket is reused for a new second, and the old count is gone.
    window.count("cancelled", T0 + 5_000, T0 + 5_000);
    const later = window.throughput(T0 + 5_000);
    expect(later.reduce((sum, s) => sum + s.failed, 0)).toBe(0);
    expect(later.at(-1)).toMatchObject({ cancelled: 1, failed: 0 });
  });

  it("files an event from a clock slightly ahead under the current second", () => {
    const window = new RollingWindow(5);
    window.count("created", T0 + 3_000, T0);
    expect(window.throughput(T0).at(-1)?.created).toBe(1);
  });

  it("merges the latencies of the window into percentiles", () => {
    const window = new RollingWindow(60);
    for (let i = 1; i <= 100; i += 1) window.latency(i * 10, T0 + (i % 50) * 1000, T0 + 50_000);
    const summary = window.latencySummary(T0 + 50_000);
    expect(summary.count).toBe(100);
    expect(summary.p50).toBeGreaterThanOrEqual(495);
    expect(summary.p50).toBeLessThanOrEqual(505);
    expect(summary.p90).toBeGreaterThanOrEqual(895);
    expect(summary.p99).toBeGreaterThanOrEqual(985);
    expect(summary.max).toBeGreaterThanOrEqual(999);
    expect(summary.max).toBeLessThanOrEqual(1001);
    // Thirty seconds on, the first half of the seconds has left the window.
    expect(window.latencySummary(T0 + 80_000).count).toBeLessThan(100);
    expect(window.latencySummary(T0 + 200_000)).toEqual({ count: 0, p50: 0, p90: 0, p99: 0, max: 0 });
  });

  it("clamps negative and huge latencies instead of failing", () => {
    const window = new RollingWindow(10);
    window.latency(-5, T0, T0);
    window.latency(10 * 3_600_000, T0, T0);
    const summary = window.latencySummary(T0);
    expect(summary.count).toBe(2);
    expect(summary.max).toBeGreaterThanOrEqual(3_599_000);
  });
});
