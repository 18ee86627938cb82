import { create } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { InventoryAction, InventoryActionRequestedSchema, ReleaseReason } from "../../gen/orderflow/v1/events_pb.ts";
import { createLogger } from "../../lib/log.ts";
import type { Sink } from "../../lib/kafka/publisher.ts";
import { createInventory } from "./handlers.ts";
import { createInventoryMetrics } from "./observability.ts";
import type { SettleOutcome, StockStore } from "./stock.ts";

describe("reservation expiries", () => {
  it("counts an EXPIRED release once, after its commit, and neither a replayed one nor another reason", async () => {
    const outcomes: SettleOutcome[] = [
      { kind: "released", orderId: "o-1", reservationId: "r-1", lines: [{ productId: "p", quantity: 1 }], replayed: false },
      { kind: "released", orderId: "o-1", reservationId: "r-1", lines: [{ productId: "p", quantity: 1 }], replayed: true },
      { kind: "released", orderId: "o-2", reservationId: "r-2", lines: [{ productId: "p", quantity: 2 }], replayed: false },
    ];
    const store = { release: () => Promise.resolve(outcomes.shift()) } as unknown as StockStore;
    const published: string[] = [];
    const out = { publish: (topic: string) => Promise.resolve(void published.push(topic)) } as unknown as Sink;
    const committed: (() => Promise<void>)[] = [];
    const registry = new Registry();
    const inventory = createInventory({ store, log: createLogger("test", "fatal"), reservationTtlMs: 1000, ...createInventoryMetrics(registry) });
    const release = (orderId: string, reason: ReleaseReason) =>
      inventory.act(create(InventoryActionRequestedSchema, { orderId, action: InventoryAction.RELEASE, reason }), out, (effect) => void committed.push(effect));
    await release("o-1", ReleaseReason.EXPIRED);
    await release("o-1", ReleaseReason.EXPIRED);
    await release("o-2", ReleaseReason.COMPENSATION);
    expect(published).toEqual(["inventory.released", "inventory.released", "inventory.released"]);
    expect(await registry.metrics()).toContain("orderflow_reservations_expired_total 0");
    await Promise.all(committed.map((effect) => effect()));
    expect(await registry.metrics()).toContain("orderflow_reservations_expired_total 1");
  });
});
