import { describe, expect, it } from "vitest";
import { StallWatchdog } from "./watchdog.ts";

function clock(start = 0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("StallWatchdog", () => {
  it("reports a stall only when idle past the bound while lag does not shrink", async () => {
    const time = clock();
    let lag = 5;
    const dog = new StallWatchdog({ stallAfterMs: 1000, measureLag: () => Promise.resolve(lag), now: time.now });
    expect((await dog.check()).stalled).toBe(false);
    time.advance(1500);
    expect(await dog.check()).toEqual({ stalled: true, lag: 5, idleMs: 1500 });
    dog.progressed();
    expect((await dog.check()).stalled).toBe(false);
    time.advance(2000);
    lag = 0;
    expect((await dog.check()).stalled).toBe(false);
    expect(dog.report.lag).toBe(0);
  });

  it("does not call a shrinking backlog a stall", async () => {
    const time = clock();
    let lag = 10;
    const dog = new StallWatchdog({ stallAfterMs: 100, measureLag: () => Promise.resolve(lag), now: time.now });
    await dog.check();
    time.advance(200);
    lag = 4;
    expect((await dog.check()).stalled).toBe(false);
    time.advance(200);
    expect((await dog.check()).stalled).toBe(true);
  });
});
