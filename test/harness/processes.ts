/**
 * Runs the whole system as real processes for end-to-end tests: the mail sink and the five
 * services, each a child process on free loopback ports, all under the test's own topic prefix
 * and Redis key prefix. Waits until every process reports ready; stop() sends SIGTERM and waits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
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
  readonly apiUrl: string;
  readonly mailUrl: string;
  readonly opsUrls: Readonly<Record<string, string>>;
  /** Output of each process, for failure messages. */
  readonly output: Readonly<Record<string, string[]>>;
  /** Stops one service (SIGTERM, or SIGKILL with kill=true) and resolves when it exited. */
  stopService(name: string, kill?: boolean): Promise<number | null>;
  /** Starts a stopped service again (with `extraEnv` over the system's) and waits until it is ready. */
  startService(name: string, extraEnv?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

const services = ["inventory", "payment", "notification", "orchestrator", "order"] as const;

/** Starts the mail sink and the five services with `env` (topic/Redis prefixes, brokers, tuning). */
export async function startSystem(env: Record<string, string>): Promise<RunningSystem> {
  const smtpPort = await freePort();
  const mailPort = await freePort();
  const apiPort = await freePort();
  const opsPorts = Object.fromEntries(await Promise.all(services.map(async (s) => [s, await freePort()] as const))) as Record<string, number>;
  const output: Record<string, string[]> = {};
  const children = new Map<string, ChildProcess>();
  const common = {
    ...process.env,
    ...env,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    MAILSINK_SMTP_PORT: String(smtpPort),
    MAILSINK_HTTP_PORT: String(mailPort),
    MAILSINK_DIR: mkdtempSync(join(tmpdir(), "orderflow-mail-")),
    HTTP_PORT: String(apiPort),
  };
  const launch = (name: string, extraEnv: Record<string, string> = {}) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "services", name, "main.ts")], {
      cwd: root,
      env: { ...common, ...(opsPorts[name] === undefined ? {} : { OPS_PORT: String(opsPorts[name]) }), ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = (output[name] ??= []);
    const keep = (chunk: Buffer) => {
      lines.push(chunk.toString());
      if (lines.length > 200) lines.shift();
    };
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
    if (child === undefined || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill(kill ? "SIGKILL" : "SIGTERM");
    return exited;
  };

  launch("mailsink");
  for (const name of services) launch(name);
  try {
    for (const name of ["mailsink", ...services]) await ready(name);
  } catch (err) {
    for (const name of children.keys()) await stopService(name, true);
    throw err;
  }
  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    mailUrl: `http://127.0.0.1:${mailPort}`,
    opsUrls: Object.fromEntries(Object.entries(opsPorts).map(([name, port]) => [name, `http://127.0.0.1:${port}`])),
    output,
    stopService,
    async startService(name: string, extraEnv?: Record<string, string>) {
      launch(name, extraEnv);
      await ready(name);
    },
    async stop() {
      await Promise.all([...children.keys()].map((name) => stopService(name)));
    },
  };
}
