/**
 * How the order service is put together: the read-model projection over the order lifecycle (with
 * the end-to-end latency metric) and the public API server, which applies each order's
 * orders.created to the same projection as it accepts the order. The API does not start without
 * a key to verify its callers' tokens with.
 */
import { integer, loadOrderApiAuth, loadRpcLimits } from "../../lib/config.ts";
import { SimulatedGateway } from "../payment/simulated-gateway.ts";
import { createAuthenticator } from "./auth.ts";
import { startApiServer, type ApiServer } from "./http.ts";
import { createOrderMetrics } from "./observability.ts";
import { createOrders } from "./orders.ts";
import { OrderProjection, liveTopics } from "./projection.ts";
import { createPlaceLimiter } from "./rate-limit.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";

/** Builds the order service on a runtime; `env` holds its own settings. */
export function buildOrder(env: Env) {
  return (runtime: Runtime): ServiceParts => {
    const auth = loadOrderApiAuth(env);
    const guard = { authenticator: createAuthenticator(auth), limiter: createPlaceLimiter(runtime.redis, runtime.keys, auth.placeLimit, runtime.log), limits: loadRpcLimits(env) };
    const projection = new OrderProjection(runtime.redis, runtime.keys, createOrderMetrics(runtime.metrics.registry), runtime.config.redisLifetimes.readModelMs);
    runtime.consume({
      group: "order-projection",
      topics: liveTopics,
      // It only writes Redis (idempotently, by event id), so nothing needs a Kafka transaction.
      delivery: "at-least-once",
      handler: async (record, context) => {
        await projection.apply(context.topic.slice(runtime.config.topicPrefix.length), record);
      },
    });
    const orders = createOrders({ ...runtime, projection, tokenizer: new SimulatedGateway() });
    let api: ApiServer | undefined;
    return {
      start: async () => {
        api = await startApiServer(orders, guard, runtime.log, integer(env, "HTTP_PORT", 8080, 0), env["HTTP_HOST"] ?? "127.0.0.1");
        runtime.log.info({ port: api.port }, "order API listening");
      },
      stop: async () => {
        await api?.close();
      },
    };
  };
}
