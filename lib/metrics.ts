/**
 * Prometheus metrics every service exposes on its ops port: records consumed by outcome, records
 * produced, handler latency, dead letters, retries. Services add their own to the same registry.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  readonly consumed: Counter<"topic" | "outcome">;
  readonly produced: Counter<"topic">;
  readonly handlerSeconds: Histogram<"topic">;
  readonly deadLettered: Counter<"topic" | "error_class">;
}

export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    consumed: new Counter({ name: "orderflow_records_consumed_total", help: "Records consumed, by outcome", labelNames: ["topic", "outcome"], registers: [registry] }),
    produced: new Counter({ name: "orderflow_records_produced_total", help: "Records produced and acknowledged", labelNames: ["topic"], registers: [registry] }),
    handlerSeconds: new Histogram({
      name: "orderflow_handler_seconds",
      help: "Time to handle one record, retries included",
      labelNames: ["topic"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    deadLettered: new Counter({ name: "orderflow_dead_letters_total", help: "Records sent to a DLQ", labelNames: ["topic", "error_class"], registers: [registry] }),
  };
}
