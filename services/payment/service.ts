/**
 * How the payment service is put together: gateway, resilience policy, processor, the
 * payments.requested consumer, and the breaker's metrics and readiness check.
 */
import { integer, unsafeDedupOff } from "../../lib/config.ts";
import type { PaymentRequested } from "../../gen/orderflow/v1/events_pb.ts";
import { createPaymentHandler } from "./handlers.ts";
import { gatewayCheck, observeBreaker } from "./observability.ts";
import { PaymentProcessor } from "./processor.ts";
import { createGatewayPolicy } from "./resilience.ts";
import { RedisLedger, SimulatedGateway } from "./simulated-gateway.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";

/** Builds the payment service on a runtime; `env` holds its own settings. */
export function buildPayment(env: Env) {
  return (runtime: Runtime): ServiceParts => {
    const gateway = new SimulatedGateway({
      latencyMs: integer(env, "GATEWAY_LATENCY_MS", 0, 0),
      failureRate: integer(env, "GATEWAY_FAILURE_PERCENT", 0, 0) / 100,
      ledger: new RedisLedger(runtime.redis, runtime.keys, runtime.config.redisLifetimes.dedupMs),
    });
    const policy = createGatewayPolicy({
      maxAttempts: integer(env, "GATEWAY_MAX_ATTEMPTS", 4, 1),
      initialDelayMs: integer(env, "GATEWAY_RETRY_INITIAL_MS", 50, 1),
      maxDelayMs: integer(env, "GATEWAY_RETRY_MAX_MS", 1000, 1),
      timeoutMs: integer(env, "GATEWAY_TIMEOUT_MS", 5000, 1),
      breakerWindow: integer(env, "GATEWAY_BREAKER_WINDOW", 40, 1),
      breakerFailureRatio: integer(env, "GATEWAY_BREAKER_FAILURE_PERCENT", 50, 1) / 100,
      breakerHalfOpenAfterMs: integer(env, "GATEWAY_BREAKER_HALF_OPEN_MS", 10_000, 1),
    });
    const processor = new PaymentProcessor({ gateway, policy, redis: runtime.redis, keys: runtime.keys, recordLifetimeMs: runtime.config.redisLifetimes.dedupMs, log: runtime.log, dedup: !unsafeDedupOff(env) });
    const handle = createPaymentHandler({ processor, log: runtime.log });
    observeBreaker(policy, runtime.metrics.registry);
    runtime.consume({ group: "payment", topics: ["payments.requested"], handler: (record, context) => handle(record.message as unknown as PaymentRequested, context.out) });
    return { checks: [gatewayCheck(policy)] };
  };
}
