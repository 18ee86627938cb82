/**
 * Runs the whole system as real processes for end-to-end and fault tests: the mail sink and the
 * five services — one or more instances each — every one a child process on free loopback ports,
 * all under the test's own topic prefix and Redis key prefix, the order API verifying tokens with a
 * key pair of this run's own. Waits until every process reports ready; stop() sends SIGTERM and waits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { OrderApi } from "../../services/cli/context.ts";
import type { OrderApiCredentials } from "../../services/cli/tokens.ts";
import { testAuth } from "./auth.ts";
import { waitFor } from "./wait.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export interface RunningSystem {
  /** The order API of each order instance; apiUrl is the first. */
  readonly apiUrl: string;
  readonly apiUrls: readonly string[];
  /** The first order instance with credentials, as clients call it. */
  readonly api: OrderApi;
  /** Tokens this run's order API accepts, for any customer or an operator. */
  readonly credentials: OrderApiCredentials;
  /** The private key those tokens are signed with (for clients that sign their own). */
  readonly signingKeyFile: string;
  readonly mailUrl: string;
  /** Ops address of each running process, by process name ("payment", or "payment-1" for a second instance). */
  readonly opsUrls: Readonly<Record<string, string>>;
  /** Output of each process, for failure messages. */
  readonly output: Readonly<Record<string, string[]>>;
  /** Every service process name, in start order. */
  readonly processes: readonly string[];
  /** Processes that exited without being stopped: name, exit code or signal, and their last output. */
  readonly crashes: readonly string[];
  /** Stops one process (SIGTERM, or SIGKILL with kill=true) and resolves when it exited. */
  stopService(name: string, kill?: boolean): Promise<number | null>;
  /** The operating-system pid of a running process (for CPU and memory figures). */
  pidOf(name: string): number | undefined;
  /** Sends a signal (SIGSTOP, SIGCONT) to one process. */
  signal(name: string, signal: NodeJS.Signals): void;
  /** Starts a stopped process again (with `extraEnv` over the system's) and waits until it is ready. */
  startService(name: string, extraEnv?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

export const serviceNames = ["inventory", "payment", "notification", "orchestrator", "order"] as const;

export interface SystemOptions {
  /** Instances of every service (each its own process, one consumer group per service). */
  readonly instances?: number;
  /** Environment of one process on top of the common one (for example its own proxy addresses). */
  readonly envOf?: (service: string, instance: number) => Record<string, string>;
  /** Also append each process's output to <logDir>/<process>.log. */
  readonly logDir?: string;
  /** Extra options for node in every service process (for example --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

/** The process name of an instance: the service name for instance 0, "name-N" after. */
export const processName = (service: string, instance: number) => (instance === 0 ? service : `${service}-${instance}`);

/** Starts the mail sink and the services with `env` (topic/Redis prefixes, brokers, tuning). */
export async function startSystem(env: Record<string, string>, options: SystemOptions = {}): Promise<RunningSystem> {
  const instances = options.instances ?? 1;
  if (options.logDir !== undefined) mkdirSync(options.logDir, { recursive: true });
  const smtpPort = await freePort();
  const mailPort = await freePort();
  const members = serviceNames.flatMap((service) => Array.from({ length: instances }, (_, instance) => ({ service, instance, name: processName(service, instance) })));
  const opsPorts: Record<string, number> = {};
  const apiPorts: Record<string, number> = {};
  for (const member of members) {
    opsPorts[member.name] = await freePort();
    if (member.service === "order") apiPorts[member.name] = await freePort();
  }
  const auth = testAuth();
  const output: Record<string, string[]> = {};
  const children = new Map<string, ChildProcess>();
  const stopping = new Set<ChildProcess>();
  const crashes: string[] = [];
  const common = {
    ...process.env,
    ...auth.env,
    ...env,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    MAILSINK_SMTP_PORT: String(smtpPort),
    MAILSINK_HTTP_PORT: String(mailPort),
    MAILSINK_DIR: mkdtempSync(join(tmpdir(), "orderflow-mail-")),
  };
  const launch = (name: string, extraEnv: Record<string, string> = {}) => {
    const member = members.find((m) => m.name === name);
    const entry = member?.service ?? name;
    const own = member === undefined
      ? {}
      : {
          OPS_PORT: String(opsPorts[name]),
          INSTANCE_ID: String(member.instance),
          ...(apiPorts[name] === undefined ? {} : { HTTP_PORT: String(apiPorts[name]) }),
          ...options.envOf?.(member.service, member.instance),
        };
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", join(root, "services", entry, "main.ts")], {
      cwd: root,
      env: { ...common, ...own, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = (output[name] ??= []);
    const keep = (chunk: Buffer) => {
      lines.push(chunk.toString());
      if (lines.length > 200) lines.shift();
      if (options.logDir !== undefined) appendFileSync(join(options.logDir, `${name}.log`), chunk);
    };
    child.once("exit", (code, signal) => {
      keep(Buffer.from(`[process exited: code ${code} signal ${signal}]\n`));
      if (!stopping.has(child)) crashes.push(`${name} exited on its own (code ${code}, signal ${signal}): ${lines.join("").slice(-1500)}`);
    });
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    children.set(name, child);
    return child;
  };
  const ready = async (name: string) => {
    const url = name === "mailsink" ? `http://127.0.0.1:${mailPort}/messages` : `http://127.0.0.1:${opsPorts[name]}/health/ready`;
    await waitFor(async () => {
      if (children.get(name)?.exitCode !== null) throw new Error(`${name} exited: ${(output[name] ?? []).join("").slice(-2000)}`);
      return (await fetch(url)).ok;
    }, { timeoutMs: 60_000, intervalMs: 100, what: `${name} to be ready` });
  };
  const stopService = async (name: string, kill = false) => {
    const child = children.get(name);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    stopping.add(child);
    child.kill("SIGCONT");
    child.kill(kill ? "SIGKILL" : "SIGTERM");
    return exited;
  };

  launch("mailsink");
  for (const { name } of members) launch(name);
  try {
    for (const name of ["mailsink", ...members.map((m) => m.name)]) await ready(name);
  } catch (err) {
    for (const name of children.keys()) await stopService(name, true);
    throw err;
  }
  const apiUrls = Object.values(apiPorts).map((port) => `http://127.0.0.1:${port}`);
  return {
    apiUrl: apiUrls[0] ?? "",
    apiUrls,
    api: { baseUrl: apiUrls[0] ?? "", credentials: auth.credentials },
    credentials: auth.credentials,
    signingKeyFile: auth.privateKeyFile,
    mailUrl: `http://127.0.0.1:${mailPort}`,
    opsUrls: Object.fromEntries(Object.entries(opsPorts).map(([name, port]) => [name, `http://127.0.0.1:${port}`])),
    output,
    processes: members.map((m) => m.name),
    crashes,
    stopService,
    pidOf: (name) => children.get(name)?.pid,
    signal(name, signal) {
      children.get(name)?.kill(signal);
    },
    async startService(name: string, extraEnv?: Record<string, string>) {
      if (name !== "mailsink" && !members.some((m) => m.name === name)) {
        // An extra instance ("payment-5"): a member of its service's group with ports of its own.
        const [, service = name, instance = "0"] = /^(.*?)(?:-(\d+))?$/.exec(name) ?? [];
        members.push({ service: service as (typeof serviceNames)[number], instance: Number(instance), name });
        opsPorts[name] = await freePort();
        if (service === "order") apiPorts[name] = await freePort();
      }
      launch(name, extraEnv);
      await ready(name);
    },
    async stop() {
      await Promise.all([...children.keys()].map((name) => stopService(name)));
    },
  };
}
