/**
 * Counts the commands one Redis connection sends, by name, so that a test can pin how many round
 * trips a step costs: a step that awaits each command before the next pays one round trip per
 * command, so the count of a step run alone is its count of sequential round trips.
 */
import type { Redis } from "ioredis";

export interface CommandLog {
  /** Names of the commands sent since the last `take()`, in order (evalsha for a script call). */
  take(): string[];
}

/** Starts counting on `redis` (for the rest of its life). */
export function logCommands(redis: Redis): CommandLog {
  let names: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, ...rest) => {
    names.push(command.name);
    return send(command, ...rest);
  };
  return {
    take() {
      const taken = names;
      names = [];
      return taken;
    },
  };
}
