/**
 * The fault suite's own infrastructure, apart from everything else on the machine so that it can
 * be broken on purpose: a Kafka broker (single node, or the 3-node cluster) on shifted ports, a
 * Redis that persists every write (as production would; a restart must not lose state), and —
 * when network faults are wanted — Toxiproxy in front of both, one proxy per service. The broker
 * advertises each service's proxy on that service's own listener, so clients cannot bypass it.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { waitFor } from "../harness/wait.ts";
import { serviceNames } from "../harness/processes.ts";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export type Topology = "single" | "cluster";

export interface EnvironmentOptions {
  readonly topology: Topology;
  /** Put Toxiproxy between every service and Kafka and Redis. */
  readonly proxied: boolean;
  /** Where broker and Redis data live (wiped at start and close). */
  readonly stateDir: string;
  /** Redis fsyncs its append-only file on every write (default) or once a second. */
  readonly redisFsync?: "always" | "everysec";
}

/**
 * Ports of the suite, away from the usual 9092/6379 and the test broker. CHAOS_PORT_SHIFT (a
 * multiple of 10) moves all of them, so that two checkouts can run the suite side by side.
 */
const shift = Number(process.env["CHAOS_PORT_SHIFT"] ?? 0);
const PORTS = { kafkaOffset: 1000 + shift, redis: 6479 + shift, toxiproxyApi: 18474 + shift, kafkaListen: 31100 + shift, kafkaProxy: 31200 + shift, redisProxy: 31300 + shift } as const;

const listenerName = (service: string) => `SVC_${service.toUpperCase()}`;

/** One Toxiproxy server and its HTTP API. */
export class Toxiproxy {
  readonly #api = `http://127.0.0.1:${PORTS.toxiproxyApi}`;
  #process: ChildProcess | undefined;

  async start(): Promise<void> {
    const { stdout } = await run("bash", [join(root, "infra", "toxiproxy.sh"), "fetch"], { maxBuffer: 1 << 20 });
    this.#process = spawn(stdout.trim(), ["-host", "127.0.0.1", "-port", String(PORTS.toxiproxyApi)], { stdio: "ignore" });
    await waitFor(async () => (await fetch(`${this.#api}/version`)).ok, { what: "toxiproxy to answer" });
  }

  async #call(method: string, path: string, body?: unknown): Promise<void> {
    const response = await fetch(`${this.#api}${path}`, { method, headers: { "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (!response.ok && response.status !== 404) throw new Error(`toxiproxy ${method} ${path}: ${response.status} ${await response.text()}`);
  }

  create(name: string, listenPort: number, upstreamPort: number): Promise<void> {
    return this.#call("POST", "/proxies", { name, listen: `127.0.0.1:${listenPort}`, upstream: `127.0.0.1:${upstreamPort}`, enabled: true });
  }

  /** Adds a toxic (latency, reset_peer, …) to both directions of a proxy. */
  async addToxic(proxy: string, type: string, attributes: Record<string, number>): Promise<void> {
    for (const stream of ["upstream", "downstream"]) {
      await this.#call("POST", `/proxies/${proxy}/toxics`, { name: `${type}-${stream}`, type, stream, toxicity: 1, attributes });
    }
  }

  /** Cuts (enabled=false) or restores a proxy: a full partition closes every connection through it. */
  setEnabled(proxy: string, enabled: boolean): Promise<void> {
    return this.#call("POST", `/proxies/${proxy}`, { enabled });
  }

  /** Removes every toxic and re-enables every proxy. */
  reset(): Promise<void> {
    return this.#call("POST", "/reset");
  }

  stop(): void {
    this.#process?.kill("SIGKILL");
  }
}

export class ChaosEnvironment {
  readonly proxy: Toxiproxy | undefined;
  readonly #env: NodeJS.ProcessEnv;

  constructor(readonly options: EnvironmentOptions) {
    this.proxy = options.proxied ? new Toxiproxy() : undefined;
    const clientListeners = options.proxied
      ? serviceNames.map((service, i) => `${listenerName(service)}:${PORTS.kafkaListen + i}:${PORTS.kafkaProxy + i}`).join(",")
      : "";
    this.#env = {
      ...process.env,
      ORDERFLOW_STATE: options.stateDir,
      KAFKA_PORT_OFFSET: String(PORTS.kafkaOffset),
      KAFKA_CLIENT_LISTENERS: clientListeners,
      REDIS_PORT: String(PORTS.redis),
      REDIS_PERSIST: "1",
      REDIS_FSYNC: options.redisFsync ?? "always",
    };
  }

  /** The broker list tools use (straight to the broker, never through a proxy). */
  get brokers(): string {
    return this.options.topology === "single"
      ? `127.0.0.1:${9092 + PORTS.kafkaOffset}`
      : [1, 2, 3].map((n) => `127.0.0.1:${19091 + PORTS.kafkaOffset + n}`).join(",");
  }

  get redisUrl(): string {
    return `redis://127.0.0.1:${PORTS.redis}`;
  }

  /** The broker and Redis addresses one service process uses: its own proxies when proxied. */
  addressesOf(service: string): { KAFKA_BROKERS: string; REDIS_URL: string } {
    const i = serviceNames.indexOf(service as (typeof serviceNames)[number]);
    if (this.proxy === undefined || i < 0) return { KAFKA_BROKERS: this.brokers, REDIS_URL: this.redisUrl };
    return { KAFKA_BROKERS: `127.0.0.1:${PORTS.kafkaProxy + i}`, REDIS_URL: `redis://127.0.0.1:${PORTS.redisProxy + i}` };
  }

  async #sh(script: string, ...args: string[]): Promise<string> {
    const { stdout } = await run("bash", [join(root, "infra", script), ...args], { env: this.#env, maxBuffer: 1 << 22 });
    return stdout;
  }

  async start(): Promise<void> {
    rmSync(this.options.stateDir, { recursive: true, force: true });
    await this.#sh("kafka/kafka.sh", "start", this.options.topology);
    await this.#sh("redis.sh", "start");
    if (this.proxy !== undefined) {
      await this.proxy.start();
      for (const [i, service] of serviceNames.entries()) {
        await this.proxy.create(`kafka-${service}`, PORTS.kafkaProxy + i, PORTS.kafkaListen + i);
        await this.proxy.create(`redis-${service}`, PORTS.redisProxy + i, PORTS.redis);
      }
    }
  }

  #brokerPid(node: number): number {
    const dir = this.options.topology === "single" ? "kafka-single" : join("kafka-cluster", `node-${node}`);
    return Number(readFileSync(join(this.options.stateDir, dir, "kafka.pid"), "utf8").trim());
  }

  /** SIGKILLs a broker (node 1 of a single topology) and waits until it is gone. */
  async killBroker(node = 1): Promise<void> {
    if (this.options.topology === "cluster") {
      await this.#sh("kafka/kafka.sh", "node-stop", String(node), "--kill");
      return;
    }
    const pid = this.#brokerPid(node);
    process.kill(pid, "SIGKILL");
    await waitFor(() => !alive(pid), { what: "the broker to die" });
  }

  /** Starts a killed broker again and waits until the topology answers in full. */
  async startBroker(node = 1): Promise<void> {
    if (this.options.topology === "cluster") await this.#sh("kafka/kafka.sh", "node-start", String(node));
    else await this.#sh("kafka/kafka.sh", "start", "single");
  }

  /** SIGSTOPs or SIGCONTs a broker: frozen, it holds connections open but answers nothing. */
  signalBroker(signal: "SIGSTOP" | "SIGCONT", node = 1): void {
    process.kill(this.#brokerPid(node), signal);
  }

  /** Sends `signal` to Redis (SIGSTOP stalls it: connections stay open, nothing is answered). */
  signalRedis(signal: "SIGSTOP" | "SIGCONT"): void {
    process.kill(this.#redisPid(), signal);
  }

  #redisPid(): number {
    return Number(readFileSync(join(this.options.stateDir, "redis", "redis.pid"), "utf8").trim());
  }

  /** SIGKILLs Redis and starts it again from its append-only file. */
  async restartRedis(): Promise<void> {
    const pid = this.#redisPid();
    process.kill(pid, "SIGKILL");
    await waitFor(() => !alive(pid), { what: "redis to die" });
    await this.#sh("redis.sh", "start");
  }

  /** Empties Redis's script cache: every service's next script call meets NOSCRIPT. */
  async flushScripts(): Promise<void> {
    const redis = new Redis(this.redisUrl);
    try {
      await redis.script("FLUSH");
    } finally {
      redis.disconnect();
    }
  }

  async close(): Promise<void> {
    this.proxy?.stop();
    await this.#sh("kafka/kafka.sh", "wipe", this.options.topology).catch(() => "");
    await this.#sh("redis.sh", "stop").catch(() => "");
    rmSync(this.options.stateDir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
