/** What every CLI command gets: parsed config, a logger, a Kafka client and the output mode. */
import type { Config } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import type { Kafka } from "../../lib/kafka/client.ts";

export interface CliContext {
  readonly config: Config;
  readonly log: Logger;
  readonly kafka: Kafka;
  readonly json: boolean;
}

/** Built lazily, so that --help works without a broker or a valid environment. */
export type ContextFactory = () => CliContext;

/** Writes a result: JSON when asked, otherwise the human lines. */
export function output(context: CliContext, value: unknown, lines: readonly string[]): void {
  process.stdout.write(context.json ? `${JSON.stringify(value, null, 2)}\n` : `${lines.join("\n")}\n`);
}
