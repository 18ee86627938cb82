/** What the inventory service adds to its metrics: reservations released because they expired. */
import { Counter, type Registry } from "prom-client";

export interface InventoryMetrics {
  /** Reservations released because they expired (the saga's EXPIRED release); each counted once, after its commit. */
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
