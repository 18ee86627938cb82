/** What the inventory service adds to its metrics: reservations the expiry sweeper released. */
import { Counter, type Registry } from "prom-client";

export interface InventoryMetrics {
  /** Reservations released because they expired; each counted once, by the sweeper that released it. */
  readonly reservationsExpired: Counter;
}

export function createInventoryMetrics(registry: Registry): InventoryMetrics {
  return {
    reservationsExpired: new Counter({
      name: "orderflow_reservations_expired_total",
      help: "Stock reservations released because they expired before the order finished",
      registers: [registry],
    }),
  };
}
