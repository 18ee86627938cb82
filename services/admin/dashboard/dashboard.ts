/**
 * The live ops dashboard: a static page plus JSON endpoints under /dashboard, mounted by the admin
 * server. Read-only; the admin server binds it to loopback.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Env } from "../../../lib/config.ts";
import type { Runtime } from "../../../lib/service.ts";

/** The dashboard as the admin server mounts it. */
export interface Dashboard {
  /** Serves GET requests under /dashboard; true when it answered. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the dashboard over a service runtime; `env` configures it. */
export function createDashboard(runtime: Runtime, env: Env): Dashboard {
  void env;
  return {
    handle(req, res) {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      if (req.method !== "GET" || (path !== "/dashboard" && !path.startsWith("/dashboard/"))) return Promise.resolve(false);
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(`orderflow dashboard (${runtime.config.service})\n`);
      return Promise.resolve(true);
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
