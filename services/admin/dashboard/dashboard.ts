/**
 * The live ops dashboard under /dashboard, mounted by the admin server: a page with its script and
 * stylesheet (files of assets/, served from a fixed list, so no path can reach another file), the
 * JSON snapshot the page polls (also read by `orderflow monitor`) and an order's timeline.
 * Read-only and unauthenticated; the admin server binds it to loopback. Everything the page needs
 * comes from here — no CDN, so it works offline.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { integer, type Env } from "../../../lib/config.ts";
import { messageOf } from "../../../lib/errors.ts";
import type { Runtime } from "../../../lib/service.ts";
import { Feed } from "./feed.ts";
import { DEFAULT_SERVICES, parseServices } from "./health.ts";

/** The dashboard as the admin server mounts it. */
export interface Dashboard {
  /** Serves GET requests under /dashboard; true when it answered. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Where the dashboard's pages live. */
export const DASHBOARD_PATH = "/dashboard";

const assetsDir = new URL("./assets/", import.meta.url);

/** The only files served, by URL path. */
const assets: Readonly<Record<string, { file: string; type: string }>> = {
  [DASHBOARD_PATH]: { file: "index.html", type: "text/html; charset=utf-8" },
  [`${DASHBOARD_PATH}/`]: { file: "index.html", type: "text/html; charset=utf-8" },
  [`${DASHBOARD_PATH}/app.js`]: { file: "app.js", type: "text/javascript; charset=utf-8" },
  [`${DASHBOARD_PATH}/style.css`]: { file: "style.css", type: "text/css; charset=utf-8" },
};

const ORDER_PATH = `${DASHBOARD_PATH}/api/orders/`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Nothing but this origin: no external scripts, styles, fonts or connections. */
const securityHeaders = {
  "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...securityHeaders, ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(body), extra);
}

/**
 * Builds the dashboard over a service runtime. Call it while that runtime's service is being built
 * (it declares the dashboard's consumer group, which the runtime starts with the others); then
 * start() after the consumers run. Reads DASHBOARD_SERVICES (name=port list of the services whose
 * /health/ready it shows), DASHBOARD_REFRESH_MS (2000) and DASHBOARD_HEALTH_TIMEOUT_MS (1500) from `env`.
 */
export function createDashboard(runtime: Runtime, env: Env): Dashboard {
  const feed = new Feed({
    runtime,
    services: parseServices(env["DASHBOARD_SERVICES"] ?? DEFAULT_SERVICES),
    refreshMs: integer(env, "DASHBOARD_REFRESH_MS", 2000, 100),
    healthTimeoutMs: integer(env, "DASHBOARD_HEALTH_TIMEOUT_MS", 1500, 1),
  });
  const log = runtime.log.child({ component: "dashboard" });

  async function route(path: string, res: ServerResponse): Promise<void> {
    const asset = assets[path];
    if (asset !== undefined) return send(res, 200, asset.type, await readFile(new URL(asset.file, assetsDir)));
    if (path === `${DASHBOARD_PATH}/api/snapshot`) return json(res, 200, await feed.snapshot());
    if (path.startsWith(ORDER_PATH)) {
      const orderId = path.slice(ORDER_PATH.length);
      if (!UUID.test(orderId)) return json(res, 400, { error: "the order id must be a UUID" });
      const timeline = await feed.timeline(orderId.toLowerCase());
      return timeline === undefined ? json(res, 404, { error: `order ${orderId} not found` }) : json(res, 200, timeline);
    }
    return json(res, 404, { error: "not found" });
  }

  return {
    async handle(req, res) {
      const path = new URL(req.url ?? "/", "http://dashboard").pathname;
      if (path !== DASHBOARD_PATH && !path.startsWith(`${DASHBOARD_PATH}/`)) return false;
      if (req.method !== "GET") {
        json(res, 405, { error: "the dashboard is read-only: GET only" }, { allow: "GET" });
        return true;
      }
      try {
        await route(path, res);
      } catch (err) {
        log.error({ path, err: messageOf(err) }, "dashboard request failed");
        if (!res.headersSent) json(res, 500, { error: "internal error" });
        else res.end();
      }
      return true;
    },
    start: () => feed.start(),
    stop: () => feed.stop(),
  };
}
