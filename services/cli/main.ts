/**
 * `orderflow` — the operators' command line. Each command prints for people by default and JSON
 * with --json; it exits 0 on success, 1 on a failure, 2 on a usage error.
 */
import { Command, CommanderError } from "commander";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { messageOf } from "../../lib/errors.ts";
import { createKafka } from "../../lib/kafka/client.ts";
import type { Env } from "../../lib/config.ts";
import { cliSettings, UsageError, type CliContext } from "./context.ts";
import { checkCommand } from "./check.ts";
import { consumptionCommand } from "./consumption.ts";
import { demoCommand } from "./demo.ts";
import { dlqCommand } from "./dlq.ts";
import { generateCommand } from "./generate.ts";
import { loadCommand } from "./load.ts";
import { monitorCommand } from "./monitor.ts";
import { ordersCommand } from "./orders.ts";
import { resetCommand } from "./reset.ts";
import { stockCommand } from "./stock.ts";
import { tokenCommand } from "./token.ts";
import { topicsCommand } from "./topics.ts";

/** Commands added with addCommand do not inherit exitOverride: set it on the whole tree. */
function exitOverrideEverywhere(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) exitOverrideEverywhere(sub);
}

/** The command tree; the context (config, Kafka) is built only when a command runs. */
export function buildProgram(env: Env): Command {
  const program = new Command("orderflow")
    .description("Operate an orderflow installation")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Exit codes: 0 ok, 1 failure, 2 usage error.
Environment: ORDER_API_URL (default http://127.0.0.1:8080), ORDER_API_TOKEN (else tokens are signed with
ORDER_API_SIGNING_KEY_FILE, default .run/auth/order-api-signing-key.pem, made by make up), ADMIN_URL (default http://127.0.0.1:8081),
ADMIN_TOKEN (else read from ADMIN_TOKEN_FILE, default .run/admin-token, written by make up),
KAFKA_BROKERS, TOPIC_PREFIX, REDIS_URL, REDIS_KEY_PREFIX, LOG_LEVEL.`,
    );
  const context = (): CliContext => {
    const config = loadConfig("cli", env);
    const log = createLogger("cli", config.logLevel);
    return { config, settings: cliSettings(env), log, kafka: createKafka(config, log), json: Boolean(program.opts<{ json?: boolean }>().json) };
  };
  program.addCommand(topicsCommand(context));
  program.addCommand(stockCommand(context));
  program.addCommand(ordersCommand(context));
  program.addCommand(dlqCommand(context));
  program.addCommand(consumptionCommand(context));
  program.addCommand(generateCommand(context));
  program.addCommand(loadCommand(context));
  program.addCommand(monitorCommand(context));
  program.addCommand(resetCommand(context));
  program.addCommand(demoCommand(context));
  program.addCommand(checkCommand(context));
  program.addCommand(tokenCommand(context));
  exitOverrideEverywhere(program);
  return program;
}

/** Runs the CLI on `argv` (node, script, ...args) and returns the exit code. */
export async function runCli(argv: readonly string[], env: Env = process.env): Promise<number> {
  process.exitCode = 0;
  try {
    await buildProgram(env).parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError) {
      process.stderr.write(`orderflow: ${err.message} (see --help)\n`);
      return 2;
    }
    process.stderr.write(`orderflow: ${messageOf(err)}\n`);
    return 1;
  }
}
