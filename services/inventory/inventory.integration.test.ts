/**
 * The inventory service in-process on the real broker and Redis: reserve on orders.validated,
 * reject what is short, commit and release on command (replays answered the same), and the
 * sweeper expiring an abandoned reservation.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LineItemSchema } from "../../gen/orderflow/v1/common_pb.ts";
import { InventoryAction, InventoryActionRequestedSchema, OrderValidatedSchema, ReleaseReason } from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { startTestService, type TestService } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildInventory } from "./service.ts";
import { StockStore } from "./stock.ts";

let ctx: TestService;
let store: StockStore;

beforeAll(async () => {
  ctx = await startTestService("inventory", buildInventory, {
    env: { RESERVATION_TTL_MS: "1500", RESERVATION_SWEEP_MS: "100" },
    watched: ["inventory.reserved", "inventory.failed", "inventory.released", "inventory.committed"],
    prepare: async (r) => {
      store = new StockStore(r.redis, r.keys);
      await store.seedCatalog([{ sku: "lamp", name: "Lamp", currency: "USD", priceMinor: 1000n, stock: 5 }]);
    },
  });
});

afterAll(() => ctx?.close());

const validated = async (orderId: string, quantity: number) => {
  const message = create(OrderValidatedSchema, sampleOf(OrderValidatedSchema, orderId));
  message.items = [create(LineItemSchema, { productId: "lamp", quantity, unitPrice: { currencyCode: "USD", amountMinor: 1000n } })];
  await ctx.publisher.publish("orders.validated", OrderValidatedSchema, message, { orderId });
};
const command = (orderId: string, action: InventoryAction, reason = ReleaseReason.UNSPECIFIED) =>
  ctx.publisher.publish("inventory.requested", InventoryActionRequestedSchema, { ...sampleOf(InventoryActionRequestedSchema, orderId), action, reason }, { orderId });

describe("inventory service", () => {
  it("reserves, commits once, and answers a repeated command the same", async () => {
    const orderId = randomUUID();
    await validated(orderId, 2);
    await ctx.watch.next(orderId, "inventory.reserved");
    await command(orderId, InventoryAction.COMMIT);
    await command(orderId, InventoryAction.COMMIT);
    await waitFor(() => ctx.watch.of(orderId, "inventory.committed").length === 2, { what: "both commit answers" });
    expect(await store.getStock("lamp")).toMatchObject({ committed: 2, reserved: 0 });
  });

  it("rejects a shortage and releases on compensation", async () => {
    const short = randomUUID();
    await validated(short, 50);
    await ctx.watch.next(short, "inventory.failed");
    const held = randomUUID();
    await validated(held, 1);
    await ctx.watch.next(held, "inventory.reserved");
    await command(held, InventoryAction.RELEASE, ReleaseReason.CANCELLED);
    const released = await ctx.watch.next(held, "inventory.released");
    expect((released.message as unknown as { reason: ReleaseReason }).reason).toBe(ReleaseReason.CANCELLED);
    await command(randomUUID(), InventoryAction.RELEASE, ReleaseReason.COMPENSATION);
    await command(randomUUID(), InventoryAction.COMMIT);
  });

  it("expires a reservation nobody settles", async () => {
    const orderId = randomUUID();
    await validated(orderId, 1);
    await ctx.watch.next(orderId, "inventory.reserved");
    const released = await ctx.watch.next(orderId, "inventory.released", 15_000);
    expect((released.message as unknown as { reason: ReleaseReason }).reason).toBe(ReleaseReason.EXPIRED);
    expect(await store.checkConservation()).toEqual([]);
  });

  it("reports ready with its dependencies", async () => {
    const report = (await (await fetch(`http://127.0.0.1:${ctx.service.ops.port}/health/ready`)).json()) as { status: string; checks: Record<string, unknown> };
    expect(report.status).toBe("ok");
    expect(Object.keys(report.checks).sort()).toEqual(["control", "kafka", "redis"]);
    expect(await (await fetch(`http://127.0.0.1:${ctx.service.ops.port}/metrics`)).text()).toMatch(/orderflow_records_consumed_total\{[^}]*outcome="handled"/);
  });
});
