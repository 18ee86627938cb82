import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { createInventory } from "./handlers.ts";
import { createInventoryMetrics } from "./observability.ts";
import type { SettleOutcome, StockStore } from "./stock.ts";

describe("reservation expiries", () => {
  it("counts what the sweeper released", async () => {
    let due: SettleOutcome[] = [
      { kind: "released", orderId: "o-1", reservationId: "r-1", lines: [{ productId: "p", quantity: 1 }], replayed: false },
      { kind: "released", orderId: "o-2", reservationId: "r-2", lines: [{ productId: "p", quantity: 2 }], replayed: false },
    ];
    const store = { expireDue: () => Promise.resolve(due) } as unknown as StockStore;
    const published: string[] = [];
    const publisher = { publish: (topic: string) => Promise.resolve(void published.push(topic)) } as unknown as Publisher;
    const registry = new Registry();
    const inventory = createInventory({ store, publisher, log: createLogger("test", "fatal"), reservationTtlMs: 1000, ...createInventoryMetrics(registry) });
    expect(await inventory.expire()).toBe(2);
    due = [];
    expect(await inventory.expire()).toBe(0);
    expect(published).toEqual(["inventory.released", "inventory.released"]);
    expect(await registry.metrics()).toContain("orderflow_reservations_expired_total 2");
  });
});
