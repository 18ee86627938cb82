/**
 * How the admin service is put together: the admin core over the runtime's Redis, publisher and
 * Kafka client, the AdminService routes behind the token guard, and the dashboard, served on
 * ADMIN_HOST:ADMIN_PORT (127.0.0.1:8081). ADMIN_TOKEN guards every call; without it the service
 * starts but refuses every call.
 */
import { integer, loadRpcLimits, type Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";
import { createAdmin } from "./admin.ts";
import { createDashboard } from "./dashboard/dashboard.ts";
import { adminInterceptors, adminRoutes } from "./routes.ts";
import { startAdminServer, type AdminServer } from "./server.ts";

/**
 * Builds the admin service on a runtime; `env` holds its own settings. `onListening` learns the
 * port bound (with ADMIN_PORT=0, a free one).
 */
export function buildAdmin(env: Env, onListening?: (port: number) => void) {
  return (runtime: Runtime): ServiceParts => {
    const port = integer(env, "ADMIN_PORT", 8081, 0);
    const host = env["ADMIN_HOST"] ?? "127.0.0.1";
    const token = env["ADMIN_TOKEN"];
    const { readMaxBytes } = loadRpcLimits(env);
    const admin = createAdmin(runtime);
    const dashboard = createDashboard(runtime, env);
    let server: AdminServer | undefined;
    return {
      start: async () => {
        if (token === undefined || token === "") runtime.log.warn("ADMIN_TOKEN is not set: every admin call will be refused");
        await dashboard.start();
        server = await startAdminServer({ routes: adminRoutes(admin), interceptors: adminInterceptors(runtime.log), token, readMaxBytes, dashboard, log: runtime.log, port, host });
        runtime.log.info({ port: server.port, host }, "admin API listening");
        onListening?.(server.port);
      },
      stop: async () => {
        await server?.close();
        await dashboard.stop();
      },
    };
  };
}
