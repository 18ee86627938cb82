/**
 * Which services the dashboard watches and how it reads their readiness: the DASHBOARD_SERVICES
 * list ("order=9101,payment=host:9102"), one GET of each /health/ready, and the payment gateway's
 * circuit breaker state from the payment service's `gateway` check.
 */
import { ConfigError } from "../../../lib/config.ts";
import { messageOf } from "../../../lib/errors.ts";

/** A watched service and where its readiness is. */
export interface WatchedService {
  readonly name: string;
  readonly readyUrl: string;
}

/** What the dashboard shows of a service: its readiness, or "down" when it did not answer. */
export type ServiceStatus = "ok" | "degraded" | "error" | "down";

export type BreakerState = "closed" | "open" | "half-open" | "unknown";

/** One readiness probe's result. */
export interface ServiceHealth {
  readonly name: string;
  readonly status: ServiceStatus;
  /** Why it is "down" (connection refused, timeout), for the page's tooltip. */
  readonly detail?: string;
}

/** The services of a default local installation and their ops ports. */
export const DEFAULT_SERVICES = "order=9101,payment=9102,inventory=9103,notification=9104,orchestrator=9105";

/**
 * Parses "name=port" or "name=host:port" entries, comma separated, into readiness URLs (host
 * defaults to 127.0.0.1). Throws ConfigError naming DASHBOARD_SERVICES on a malformed entry.
 */
export function parseServices(raw: string): WatchedService[] {
  const seen = new Set<string>();
  return raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const match = /^([a-z][\w-]*)=(?:([\w.-]+):)?(\d{1,5})$/i.exec(entry);
      const [, name = "", host = "127.0.0.1", port = ""] = match ?? [];
      if (match === null || Number(port) < 1 || Number(port) > 65535) {
        throw new ConfigError(`DASHBOARD_SERVICES entries must be name=port or name=host:port, got ${JSON.stringify(entry)}`);
      }
      if (seen.has(name)) throw new ConfigError(`DASHBOARD_SERVICES names ${name} twice`);
      seen.add(name);
      return { name, readyUrl: `http://${host}:${port}/health/ready` };
    });
}

const statuses = new Set(["ok", "degraded", "error"]);
const breakerStates = new Set(["closed", "open", "half-open"]);

/** A readiness body's overall status; "error" when the body is not a readiness report. */
export function statusOf(body: unknown): Exclude<ServiceStatus, "down"> {
  const status = (body as { status?: unknown } | null)?.status;
  return typeof status === "string" && statuses.has(status) ? (status as Exclude<ServiceStatus, "down">) : "error";
}

/** The breaker state in the payment service's readiness body (checks.gateway.detail.breaker), or "unknown". */
export function breakerOf(body: unknown): BreakerState {
  const checks = (body as { checks?: { gateway?: { detail?: { breaker?: unknown } } } } | null)?.checks;
  const state = checks?.gateway?.detail?.breaker;
  return typeof state === "string" && breakerStates.has(state) ? (state as BreakerState) : "unknown";
}

/** GETs one readiness URL; never throws (no answer in `timeoutMs` or no connection → "down"). */
export async function probe(service: WatchedService, timeoutMs: number): Promise<{ health: ServiceHealth; body: unknown }> {
  try {
    const response = await fetch(service.readyUrl, { signal: AbortSignal.timeout(timeoutMs) });
    const body: unknown = await response.json().catch(() => undefined);
    return { health: { name: service.name, status: statusOf(body) }, body };
  } catch (err) {
    return { health: { name: service.name, status: "down", detail: messageOf(err) }, body: undefined };
  }
}
