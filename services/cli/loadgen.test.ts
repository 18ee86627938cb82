import { describe, expect, it } from "vitest";
import { Measurement, judgeStep, runClosedLoop, runOpenLoop, runRamp, sustainableRate, type LoadTarget } from "./loadgen.ts";

/** A target whose orders end `endAfterMs(index)` after they were sent (undefined: never). */
function simulated(m: () => Measurement, endAfterMs: (index: number) => number | undefined, fail?: (index: number) => boolean): LoadTarget & { sentAt: number[] } {
  const sentAt: number[] = [];
  return {
    sentAt,
    send(index) {
      sentAt.push(performance.now());
      if (fail?.(index) === true) return Promise.reject(new Error("HTTP 503"));
      const id = `o-${index}`;
      const after = endAfterMs(index);
      const measurement = m();
      if (after !== undefined) setTimeout(() => measurement.ended({ id, outcome: index % 2 === 0 ? "completed" : "failed", ...(index % 2 === 0 ? {} : { reason: "PAYMENT" }) }), after);
      return Promise.resolve(id);
    },
  };
}

const now = () => performance.now();

describe("load generator", () => {
  it("open loop keeps its schedule and measures from the scheduled time", async () => {
    const m = new Measurement(now);
    const target = simulated(() => m, () => 20);
    const result = await runOpenLoop(target, m, { rate: 200, durationS: 0.5, drainMs: 2000 });
    expect(result.sent).toBe(100);
    expect(result.accepted).toBe(100);
    expect(result.ended).toEqual({ completed: 50, failed: 50 });
    expect(result.reasons).toEqual({ PAYMENT: 50 });
    expect(result.unfinished).toBe(0);
    expect(result.latencyMs.count).toBe(100);
    expect(result.latencyMs.p50).toBeGreaterThanOrEqual(19);
    expect(result.latencyMs.p50).toBeLessThan(200);
    // 100 orders at 200/s: the last is sent about 495 ms after the first, not all at once.
    const spread = (target.sentAt.at(-1) ?? 0) - (target.sentAt[0] ?? 0);
    expect(spread).toBeGreaterThan(400);
    expect(spread).toBeLessThan(900);
  });

  it("a stalled sender is not hidden: latency counts from when the order was due", async () => {
    const m = new Measurement(now);
    let blocked = true;
    const target: LoadTarget = {
      async send(index) {
        // The first send blocks the event loop for 300 ms; every order due meanwhile is late.
        if (blocked) {
          blocked = false;
          const until = performance.now() + 300;
          while (performance.now() < until) {
            // busy: a stall, as a GC pause or a blocked loop would be
          }
        }
        const id = `o-${index}`;
        setTimeout(() => m.ended({ id, outcome: "completed" }), 1);
        return Promise.resolve(id);
      },
    };
    const result = await runOpenLoop(target, m, { rate: 100, durationS: 0.5, drainMs: 2000 });
    expect(result.latencyMs.max).toBeGreaterThan(250);
  });

  it("an end that arrives before the send was answered still counts", () => {
    let t = 1000;
    const m = new Measurement(() => t, 1000);
    m.sent(1000);
    t = 1040;
    m.ended({ id: "early", outcome: "completed" });
    m.accepted("early", 1000);
    m.ended({ id: "someone-else", outcome: "completed" });
    const result = m.result();
    expect(result.ended).toEqual({ completed: 1 });
    expect(result.latencyMs.p50).toBeCloseTo(40, 0);
  });

  it("orders that never end are unfinished, failed sends are errors", async () => {
    const m = new Measurement(now);
    const target = simulated(() => m, (i) => (i < 5 ? 5 : undefined), (i) => i >= 8);
    const result = await runOpenLoop(target, m, { rate: 100, durationS: 0.1, drainMs: 100 });
    expect(result.sent).toBe(10);
    expect(result.accepted).toBe(8);
    expect(result.errors).toEqual({ "HTTP 503": 2 });
    expect(result.unfinished).toBe(3);
  });

  it("closed loop keeps at most `concurrency` orders in flight", async () => {
    const m = new Measurement(now);
    let inFlight = 0;
    let most = 0;
    const target: LoadTarget = {
      send(index) {
        inFlight += 1;
        most = Math.max(most, inFlight);
        const id = `o-${index}`;
        setTimeout(() => {
          inFlight -= 1;
          m.ended({ id, outcome: "completed" });
        }, 5);
        return Promise.resolve(id);
      },
    };
    const result = await runClosedLoop(target, m, { orders: 40, concurrency: 4, drainMs: 1000 });
    expect(result.ended).toEqual({ completed: 40 });
    expect(most).toBe(4);
  });

  it("a ramp stops at the first rate the system cannot keep up with", async () => {
    let current = new Measurement(now);
    let step = -1;
    // The third step (200/s) is over capacity: its orders never end.
    const target = simulated(() => current, () => (step >= 2 ? undefined : 5));
    const result = await runRamp(target, now, (m) => ((current = m), (step += 1)), { startRate: 50, factor: 2, maxRate: 1000, stepS: 0.2, p99BoundMs: 500, drainMs: 300 });
    expect(result.map((s) => [s.rate, s.sustainable])).toEqual([
      [50, true],
      [100, true],
      [200, false],
    ]);
    expect(result[2]?.why).toMatch(/backlog/);
    expect(sustainableRate(result)).toBe(100);
  });

  it("judges a step by failures, backlog and p99", () => {
    const base = { sent: 100, accepted: 100, errors: {}, ended: { completed: 100 }, reasons: {}, unfinished: 0, throughput: 100, seconds: [], durationS: 1 };
    const latency = (p99: number) => ({ count: 100, p50: 1, p90: 1, p99, p999: p99, max: p99, mean: 1 });
    expect(judgeStep({ ...base, latencyMs: latency(100) }, 500).sustainable).toBe(true);
    expect(judgeStep({ ...base, latencyMs: latency(600) }, 500).why).toMatch(/p99 600/);
    expect(judgeStep({ ...base, unfinished: 5, latencyMs: latency(100) }, 500).why).toMatch(/backlog/);
    expect(judgeStep({ ...base, errors: { x: 1 }, latencyMs: latency(100) }, 500).why).toMatch(/failed/);
  });
});
