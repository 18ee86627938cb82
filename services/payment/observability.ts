/**
 * What the payment service adds to its ops port: the gateway circuit breaker as a gauge
 * (0 closed, 1 open, 2 half-open) with a counter of its transitions, and a `gateway` readiness
 * check that is degraded while the breaker is not closed. An open breaker delays payments (the
 * commands wait and are delivered again) rather than failing them, so it degrades the service
 * instead of taking it out of rotation.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { HealthCheck } from "../../lib/ops-server.ts";
import type { BreakerState, GatewayPolicy } from "./resilience.ts";

/** The gauge value of each breaker state. */
const breakerStateValue: Readonly<Record<BreakerState, number>> = { closed: 0, open: 1, "half-open": 2 };

/**
 * Registers the breaker's gauge (read from the policy at each scrape) and transition counter on
 * `registry`, under the label `breaker`.
 */
export function observeBreaker(policy: Pick<GatewayPolicy, "breakerState" | "onStateChange">, registry: Registry, breaker = "gateway"): void {
  new Gauge({
    name: "orderflow_circuit_breaker_state",
    help: "Circuit breaker state: 0 closed, 1 open, 2 half-open",
    labelNames: ["breaker"],
    registers: [registry],
    collect() {
      this.set({ breaker }, breakerStateValue[policy.breakerState()]);
    },
  });
  const transitions = new Counter({
    name: "orderflow_circuit_breaker_transitions_total",
    help: "Circuit breaker state changes, by the state entered",
    labelNames: ["breaker", "to"],
    registers: [registry],
  });
  policy.onStateChange((to) => transitions.inc({ breaker, to }));
}

/** Readiness of the payment processor as the breaker sees it: `detail.breaker` is its state. */
export function gatewayCheck(policy: Pick<GatewayPolicy, "breakerState">): HealthCheck {
  return {
    name: "gateway",
    check: () => {
      const breaker = policy.breakerState();
      return { status: breaker === "closed" ? "ok" : "degraded", detail: { breaker } };
    },
  };
}
