/**
 * The inventory service in-process on the real broker and Redis: reserve on orders.validated,
 * reject what is short, commit on orders.completed (a duplicate commits nothing more and is answered
 * the same), release on command, commit on a COMMIT command of an earlier version, and a
 * reservation's expiry: announced with it, acted on when the saga's EXPIRED release arrives.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LineItemSchema } from "../../gen/orderflow/v1/common_pb.ts";
import { InventoryAction, InventoryActionRequestedSchema, OrderCompletedSchema, OrderValidatedSchema, ReleaseReason, type InventoryCommitted, type InventoryReserved } from "../../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { startTestService, type TestService } from "../../test/harness/system.ts";
import { waitFor } from "../../test/harness/wait.ts";
import { buildInventory } from "./service.ts";
import { StockStore } from "./stock.ts";

let ctx: TestService;
let store: StockStore;

beforeAll(async () => {
  ctx = await startTestService("inventory", buildInventory, {
    env: { RESERVATION_TTL_MS: "5000" },
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

/** How many records of catalog topic `base` the service handled, from its /metrics. */
async function handled(base: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${ctx.service.ops.port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("orderflow_records_consumed_total{") && l.includes(`topic="${ctx.t.topic(base)}"`) && l.includes('outcome="handled"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}
const completed = (orderId: string) => ctx.publisher.publish("orders.completed", OrderCompletedSchema, sampleOf(OrderCompletedSchema, orderId), { orderId });

describe("inventory service", () => {
  it("commits the reservation on orders.completed, once, and answers a duplicate the same", async () => {
    const before = (await store.getStock("lamp"))!;
    const orderId = randomUUID();
    await validated(orderId, 2);
    const reserved = await ctx.watch.next(orderId, "inventory.reserved");
    await completed(orderId);
    await completed(orderId);
    const answers = await waitFor(() => (ctx.watch.of(orderId, "inventory.committed").length === 2 ? ctx.watch.of(orderId, "inventory.committed") : undefined), { what: "both commit answers" });
    const reservationId = (reserved.message as unknown as { reservationId: string }).reservationId;
    expect(answers.map((a) => (a.message as unknown as InventoryCommitted).reservationId)).toEqual([reservationId, reservationId]);
    expect(await store.getStock("lamp")).toMatchObject({ available: before.available - 2, committed: before.committed + 2, reserved: before.reserved });
    expect(await store.checkConservation()).toEqual([]);
  });

  it("still commits on an inventory.requested COMMIT written by an earlier version", async () => {
    const before = (await store.getStock("lamp"))!;
    const orderId = randomUUID();
    await validated(orderId, 1);
    await ctx.watch.next(orderId, "inventory.reserved");
    await command(orderId, InventoryAction.COMMIT);
    await ctx.watch.next(orderId, "inventory.committed");
    expect(await store.getStock("lamp")).toMatchObject({ committed: before.committed + 1, reserved: before.reserved });
  });

  it("commits nothing for an orders.completed whose order holds no reservation", async () => {
    const before = await store.getStock("lamp");
    const handledBefore = await handled("orders.completed");
    const orderId = randomUUID();
    await completed(orderId);
    await waitFor(async () => (await handled("orders.completed")) > handledBefore, { what: "the completion handled" });
    expect(ctx.watch.of(orderId, "inventory.committed")).toEqual([]);
    expect(await store.getStock("lamp")).toEqual(before);
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

  it("says when a reservation expires, and releases it on the saga's EXPIRED release", async () => {
    const orderId = randomUUID();
    const before = Date.now();
    const stockBefore = (await store.getStock("lamp"))!;
    await validated(orderId, 1);
    const reserved = await ctx.watch.next(orderId, "inventory.reserved");
    const expiresAt = Number((reserved.message as unknown as InventoryReserved).expiresAt?.seconds ?? 0n) * 1000;
    expect(expiresAt).toBeGreaterThanOrEqual(Math.floor((before + 5000) / 1000) * 1000);
    await command(orderId, InventoryAction.RELEASE, ReleaseReason.EXPIRED);
    const released = await ctx.watch.next(orderId, "inventory.released");
    expect((released.message as unknown as { reason: ReleaseReason }).reason).toBe(ReleaseReason.EXPIRED);
    expect(await store.getStock("lamp")).toEqual(stockBefore);
    expect(await store.checkConservation()).toEqual([]);
  });

  it("reports ready with its dependencies", async () => {
    const report = (await (await fetch(`http://127.0.0.1:${ctx.service.ops.port}/health/ready`)).json()) as { status: string; checks: Record<string, unknown> };
    expect(report.status).toBe("ok");
    expect(Object.keys(report.checks).sort()).toEqual(["control", "kafka", "redis"]);
    expect(await (await fetch(`http://127.0.0.1:${ctx.service.ops.port}/metrics`)).text()).toMatch(/orderflow_records_consumed_total\{[^}]*outcome="handled"/);
  });
});
