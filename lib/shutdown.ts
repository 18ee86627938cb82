/**
 * Graceful shutdown for service entry points: on SIGTERM or SIGINT, run the stop sequence once
 * (consumers finish their in-flight records and commit, producers flush), then exit — 0 when it
 * completed, 1 when it failed or outran its deadline.
 */
import { messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";

export interface ShutdownOptions {
  readonly timeoutMs?: number;
  readonly signals?: readonly NodeJS.Signals[];
  /** How the process ends; injectable for tests. */
  readonly exit?: (code: number) => void;
}

/** Installs the signal handlers; returns a function that removes them. */
export function stopOnSignals(stop: () => Promise<void>, log: Logger, options: ShutdownOptions = {}): () => void {
  const { timeoutMs = 30_000, signals = ["SIGTERM", "SIGINT"], exit = (code: number) => process.exit(code) } = options;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: draining in-flight work");
    const deadline = setTimeout(() => {
      log.error({ timeoutMs }, "shutdown deadline passed; exiting without a clean stop");
      exit(1);
    }, timeoutMs);
    deadline.unref();
    stop().then(
      () => {
        clearTimeout(deadline);
        log.info("stopped cleanly");
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(deadline);
        log.error({ err: messageOf(err) }, "shutdown failed");
        exit(1);
      },
    );
  };
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}
