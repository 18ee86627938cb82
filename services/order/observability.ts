/** What the order service adds to its metrics: how long orders take from acceptance to their end. */
import { Histogram, type Registry } from "prom-client";

export interface OrderMetrics {
  /** Accepted (the order's created_at) → first terminal event (its occurredAt), by outcome. */
  readonly e2eSeconds: Histogram<"outcome">;
}

export function createOrderMetrics(registry: Registry): OrderMetrics {
  return {
    e2eSeconds: new Histogram({
      name: "orderflow_order_e2e_seconds",
      help: "Seconds from an order's acceptance to its terminal state (completed, failed or cancelled), measured by the order projection",
      labelNames: ["outcome"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60],
      registers: [registry],
    }),
  };
}
