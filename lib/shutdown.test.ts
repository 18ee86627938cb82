import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "./log.ts";
import { stopOnSignals } from "./shutdown.ts";

const quiet = createLogger("test", "silent", new Writable({ write: (_c, _e, done) => done() }));
let remove: () => void = () => undefined;

afterEach(() => remove());

function exitCode(): { promise: Promise<number>; exit: (code: number) => void } {
  let exit: (code: number) => void = () => undefined;
  const promise = new Promise<number>((resolve) => (exit = resolve));
  return { promise, exit };
}

describe("stopOnSignals", () => {
  it("runs the stop sequence once and exits 0", async () => {
    let stops = 0;
    const { promise, exit } = exitCode();
    remove = stopOnSignals(() => Promise.resolve(void (stops += 1)), quiet, { signals: ["SIGUSR2"], exit });
    process.emit("SIGUSR2", "SIGUSR2");
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await promise).toBe(0);
    expect(stops).toBe(1);
  });

  it("exits 1 when stopping fails", async () => {
    const { promise, exit } = exitCode();
    remove = stopOnSignals(() => Promise.reject(new Error("broker gone")), quiet, { signals: ["SIGUSR2"], exit });
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await promise).toBe(1);
  });

  it("exits 1 when stopping outruns the deadline", async () => {
    const { promise, exit } = exitCode();
    remove = stopOnSignals(() => new Promise<void>(() => undefined), quiet, { signals: ["SIGUSR2"], exit, timeoutMs: 20 });
    process.emit("SIGUSR2", "SIGUSR2");
    expect(await promise).toBe(1);
  });
});
