/**
 * What every CLI command gets — parsed config, the CLI's own settings (API addresses, where the
 * admin token and the order API's credentials come from), a logger, a Kafka client and the output mode — and the two error kinds the
 * entry maps to exit codes: a UsageError exits 2, anything else 1.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, type Config, type Env } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import type { Kafka } from "../../lib/kafka/client.ts";
import { fixedCredentials, keyFileCredentials, signingKeyFiles, type OrderApiCredentials } from "./tokens.ts";

/** The repository root: `.run/` (written by `make up`) lives here. */
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Settings only the CLI has, read from the environment the CLI was given. */
export interface CliSettings {
  /** Base URL of the order API (REST and Connect OrderService): ORDER_API_URL. */
  readonly orderApiUrl: string;
  /** Base URL of the admin process (Connect AdminService and the dashboard): ADMIN_URL. */
  readonly adminUrl: string;
  /** The admin bearer token from ADMIN_TOKEN, if set. */
  readonly adminToken?: string;
  /** Where `make up` writes the admin token, read when ADMIN_TOKEN is unset: ADMIN_TOKEN_FILE. */
  readonly adminTokenFile: string;
  /** A bearer token for every order API call, if set: ORDER_API_TOKEN. */
  readonly orderApiToken?: string;
  /**
   * When ORDER_API_TOKEN is unset, tokens are signed with this private key (ORDER_API_SIGNING_KEY_FILE,
   * default the one `make up` makes under .run/auth/): a customer's token for each order placed, an
   * operator's for reading.
   */
  readonly signingKeyFile: string;
}

/** The order API as a client reaches it: its base URL and the tokens to send. */
export interface OrderApi {
  readonly baseUrl: string;
  readonly credentials: OrderApiCredentials;
}

/** The order API of these settings. */
export function orderApiOf(settings: CliSettings): OrderApi {
  return {
    baseUrl: settings.orderApiUrl,
    credentials: settings.orderApiToken === undefined ? keyFileCredentials(settings.signingKeyFile) : fixedCredentials(settings.orderApiToken),
  };
}

export interface CliContext {
  readonly config: Config;
  readonly settings: CliSettings;
  readonly log: Logger;
  readonly kafka: Kafka;
  readonly json: boolean;
}

/** Built lazily, so that --help works without a broker or a valid environment. */
export type ContextFactory = () => CliContext;

/** A command line that cannot be run as given; the CLI exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

function url(env: Env, name: string, fallback: string): string {
  const raw = env[name] ?? fallback;
  try {
    return new URL(raw).toString().replace(/\/$/, "");
  } catch {
    throw new ConfigError(`${name} must be a URL, got ${JSON.stringify(raw)}`);
  }
}

/** Reads the CLI's settings; throws ConfigError naming a variable that holds no URL. */
export function cliSettings(env: Env): CliSettings {
  const token = env["ADMIN_TOKEN"];
  const orderApiToken = env["ORDER_API_TOKEN"];
  return {
    orderApiUrl: url(env, "ORDER_API_URL", "http://127.0.0.1:8080"),
    adminUrl: url(env, "ADMIN_URL", "http://127.0.0.1:8081"),
    ...(token === undefined || token === "" ? {} : { adminToken: token }),
    adminTokenFile: env["ADMIN_TOKEN_FILE"] ?? join(repoRoot, ".run", "admin-token"),
    ...(orderApiToken === undefined || orderApiToken === "" ? {} : { orderApiToken }),
    signingKeyFile: env["ORDER_API_SIGNING_KEY_FILE"] ?? signingKeyFiles(join(repoRoot, ".run", "auth")).privateKeyFile,
  };
}

/** Writes a result: JSON when asked, otherwise the human lines. */
export function output(context: CliContext, value: unknown, lines: readonly string[]): void {
  process.stdout.write(context.json ? `${JSON.stringify(value, null, 2)}\n` : `${lines.join("\n")}\n`);
}

/** Writes one line as it happens: a compact JSON object per line with --json, else the text. */
export function emit(context: CliContext, value: unknown, line: string): void {
  process.stdout.write(context.json ? `${JSON.stringify(value)}\n` : `${line}\n`);
}

/** A warning for people, on stderr, so that stdout stays parseable. */
export function warn(message: string): void {
  process.stderr.write(`orderflow: warning: ${message}\n`);
}

/** Parses a whole number >= min for an option; a bad value is a usage error. */
export function wholeNumberOption(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < min) throw new UsageError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** Parses a number > 0 for an option; a bad value is a usage error. */
export function positiveNumberOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a number > 0, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** Parses a fraction from 0 to 1 for an option; a bad value is a usage error. */
export function fractionOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`${name} must be a fraction from 0 to 1, got ${JSON.stringify(value)}`);
    return n;
  };
}
