/**
 * A periodic background job (the saga timer, the reservation sweeper): runs `work` every
 * `intervalMs`, never two rounds at once (a slow round makes the next beat skip rather than queue),
 * logs a failed round and carries on. The returned function stops it and waits for a running round.
 */
import { messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";

export function every(intervalMs: number, work: () => Promise<unknown>, log: Logger, what: string): () => Promise<void> {
  let current: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (current !== undefined) return;
    current = work()
      .then(
        () => undefined,
        (err: unknown) => log.warn({ err: messageOf(err) }, `${what} failed`),
      )
      .finally(() => (current = undefined));
  }, intervalMs);
  return async () => {
    clearInterval(timer);
    await current;
  };
}
