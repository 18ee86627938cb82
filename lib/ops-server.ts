/**
 * The ops endpoints of a service, on their own port: `/health/live` (the process loop answers),
 * `/health/ready` (ok / degraded / error with per-dependency detail; 503 on error) and `/metrics`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { messageOf } from "./errors.ts";

export type HealthStatus = "ok" | "degraded" | "error";

export interface CheckResult {
  readonly status: HealthStatus;
  readonly detail?: unknown;
}

/** One dependency or internal part whose state readiness depends on. */
export interface HealthCheck {
  readonly name: string;
  check(): Promise<CheckResult> | CheckResult;
}

export interface ReadinessReport {
  readonly status: HealthStatus;
  readonly checks: Record<string, CheckResult>;
}

const rank: Record<HealthStatus, number> = { ok: 0, degraded: 1, error: 2 };
const CHECK_TIMEOUT_MS = 2000;

/** Runs every check (each bounded in time; a throw or timeout is an error) and combines them. */
export async function readiness(checks: readonly HealthCheck[]): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c): Promise<[string, CheckResult]> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeout = new Promise<CheckResult>((resolve) => {
          timer = setTimeout(() => resolve({ status: "error", detail: `no answer within ${CHECK_TIMEOUT_MS} ms` }), CHECK_TIMEOUT_MS);
        });
        return [c.name, await Promise.race([Promise.resolve(c.check()), timeout])];
      } catch (err) {
        return [c.name, { status: "error", detail: messageOf(err) }];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const status = results.reduce<HealthStatus>((worst, [, r]) => (rank[r.status] > rank[worst] ? r.status : worst), "ok");
  return { status, checks: Object.fromEntries(results) };
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on host:port (0 picks a free port) and serves the ops endpoints. */
export async function startOpsServer(options: {
  readonly port: number;
  readonly host?: string;
  readonly checks: readonly HealthCheck[];
  readonly registry: Registry;
}): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const send = (code: number, body: string, type = "application/json") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    const route = async () => {
      switch (req.url) {
        case "/health/live":
          return send(200, JSON.stringify({ status: "ok" }));
        case "/health/ready": {
          const report = await readiness(options.checks);
          return send(report.status === "error" ? 503 : 200, JSON.stringify(report));
        }
        case "/metrics":
          return send(200, await options.registry.metrics(), options.registry.contentType);
        default:
          return send(404, JSON.stringify({ error: "not found" }));
      }
    };
    route().catch((err: unknown) => send(500, JSON.stringify({ error: messageOf(err) })));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
