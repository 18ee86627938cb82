/**
 * How the inventory service is put together: reservations on orders.validated; commits on
 * orders.completed and releases on inventory.requested, in one group. Reservations expire when the
 * saga sends their EXPIRED release (handlers.ts), so there is no sweeper of its own.
 */
import { integer } from "../../lib/config.ts";
import { topicName } from "../../lib/kafka/client.ts";
import type { InventoryActionRequested, OrderCompleted, OrderValidated } from "../../gen/orderflow/v1/events_pb.ts";
import { createInventory } from "./handlers.ts";
import { createInventoryMetrics } from "./observability.ts";
import { StockStore } from "./stock.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";

/** Builds the inventory service on a runtime; `env` holds its own settings. */
export function buildInventory(env: Env) {
  return (runtime: Runtime): ServiceParts => {
    const inventory = createInventory({
      ...runtime,
      store: new StockStore(runtime.redis, runtime.keys, runtime.config.redisLifetimes.dedupMs),
      reservationTtlMs: integer(env, "RESERVATION_TTL_MS", 10 * 60_000, 1),
      ...createInventoryMetrics(runtime.metrics.registry),
    });
    runtime.consume({ group: "inventory", topics: ["orders.validated"], handler: (record, context) => inventory.reserve(record.message as unknown as OrderValidated, context.out) });
    runtime.consume({
      group: "inventory-actions",
      topics: ["orders.completed", "inventory.requested"],
      handler: (record, context) =>
        context.topic === topicName(runtime.config, "orders.completed")
          ? inventory.complete(record.message as unknown as OrderCompleted, context.out)
          : inventory.act(record.message as unknown as InventoryActionRequested, context.out, (effect) => context.afterCommit(effect)),
    });
    return { start: () => Promise.resolve(), stop: () => Promise.resolve() };
  };
}
