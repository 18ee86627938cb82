/** Entry of the inventory service: stock reservations in Redis, driven by the saga. */
import { integer } from "../../lib/config.ts";
import { runService } from "../../lib/service.ts";
import type { InventoryActionRequested, OrderValidated } from "../../gen/orderflow/v1/events_pb.ts";
import { createInventory } from "./handlers.ts";
import { StockStore } from "./stock.ts";

runService("inventory", (runtime) => {
  const env = process.env;
  const inventory = createInventory({
    ...runtime,
    store: new StockStore(runtime.redis, runtime.keys),
    reservationTtlMs: integer(env, "RESERVATION_TTL_MS", 10 * 60_000, 1),
  });
  runtime.consume({ group: "inventory", topics: ["orders.validated"], handler: (record) => inventory.reserve(record.message as unknown as OrderValidated) });
  runtime.consume({ group: "inventory-actions", topics: ["inventory.requested"], handler: (record) => inventory.act(record.message as unknown as InventoryActionRequested) });
  let stopSweeper: () => Promise<void> = () => Promise.resolve();
  return {
    start: () => Promise.resolve(void (stopSweeper = inventory.startSweeper(integer(env, "RESERVATION_SWEEP_MS", 1000, 10)))),
    stop: () => stopSweeper(),
  };
});
