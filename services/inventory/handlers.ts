/**
 * The inventory service's Kafka shell over the stock store: reserve on orders.validated, commit on
 * orders.completed (the order is paid and its stock is sold), release on inventory.requested (and
 * commit on an inventory.requested COMMIT that earlier versions of the orchestrator wrote). A
 * reservation expires when the saga says so (an EXPIRED release, sent at its expires_at if the order
 * has not completed): the saga decides completion and expiry in one place, so stock is never put
 * back on sale under an order that completes. Every store call is idempotent by order id and returns
 * its recorded outcome on a replay, so a redelivered record publishes the same answer again (its
 * first answer may have been aborted with the transaction) and changes no stock.
 */
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import {
  InventoryAction,
  InventoryCommittedSchema,
  InventoryReleasedSchema,
  InventoryReservationFailedSchema,
  InventoryReservedSchema,
  ReleaseReason,
  type InventoryActionRequested,
  type OrderCompleted,
  type OrderValidated,
} from "../../gen/orderflow/v1/events_pb.ts";
import type { Counter } from "prom-client";
import type { Logger } from "../../lib/log.ts";
import type { Sink } from "../../lib/kafka/publisher.ts";
import type { StockStore } from "./stock.ts";

export interface InventoryDeps {
  readonly store: StockStore;
  readonly log: Logger;
  /** How long a reservation holds stock (its expires_at, which the saga acts on). */
  readonly reservationTtlMs: number;
  readonly now?: () => number;
  /** Counts reservations released because they expired (observability.ts). */
  readonly reservationsExpired?: Pick<Counter, "inc">;
}

const releaseReasons = {
  [ReleaseReason.COMPENSATION]: "COMPENSATION",
  [ReleaseReason.EXPIRED]: "EXPIRED",
  [ReleaseReason.CANCELLED]: "CANCELLED",
} as const;

const reasonOf = (name: "COMPENSATION" | "EXPIRED" | "CANCELLED") => ReleaseReason[name];

export function createInventory(deps: InventoryDeps) {
  const { store, log } = deps;
  const now = deps.now ?? Date.now;

  async function publishReleased(out: Sink, orderId: string, reservationId: string, lines: readonly { productId: string; quantity: number }[], reason: ReleaseReason) {
    await out.publish("inventory.released", InventoryReleasedSchema, { orderId, reservationId, reason, lines: [...lines], releasedAt: timestampNow() }, { orderId });
  }

  async function commitReservation(orderId: string, out: Sink): Promise<void> {
    const outcome = await store.commit(orderId);
    if (outcome.kind !== "nothing") {
      await out.publish("inventory.committed", InventoryCommittedSchema, { orderId, reservationId: outcome.reservationId, lines: [...outcome.lines], committedAt: timestampNow() }, { orderId });
    } else {
      // The saga completes an order only on a live reservation it has not asked to release, so this
      // means units sold twice: the checker's rule "completed ⇒ committed" reports it.
      log.error({ orderId, state: outcome.state }, "commit found no live reservation");
    }
  }

  return {
    /** orders.validated → reserve every line or none. */
    async reserve(event: OrderValidated, out: Sink): Promise<void> {
      const { orderId } = event;
      const outcome = await store.reserve(orderId, event.items.map((i) => ({ productId: i.productId, quantity: i.quantity })), deps.reservationTtlMs, now());
      if (outcome.kind === "reserved") {
        await out.publish("inventory.reserved", InventoryReservedSchema, {
          orderId,
          reservationId: outcome.reservationId,
          lines: outcome.lines.map((l) => ({ productId: l.productId, quantity: l.quantity })),
          expiresAt: timestampFromMs(outcome.expiresAtMs),
          reservedAt: timestampNow(),
        }, { orderId });
      } else {
        await out.publish("inventory.failed", InventoryReservationFailedSchema, {
          orderId,
          shortages: outcome.shortages.map((s) => ({ productId: s.productId, requested: s.requested, available: s.available })),
          failedAt: timestampNow(),
        }, { orderId });
      }
    },

    /** orders.completed → the reservation becomes sold stock. */
    complete(event: OrderCompleted, out: Sink): Promise<void> {
      return commitReservation(event.orderId, out);
    },

    /** inventory.requested → release the order's reservation (or commit it, for a COMMIT of an earlier version). */
    async act(command: InventoryActionRequested, out: Sink, afterCommit: (effect: () => Promise<void>) => void): Promise<void> {
      const { orderId } = command;
      if (command.action === InventoryAction.COMMIT) return commitReservation(orderId, out);
      const reason = releaseReasons[command.reason as keyof typeof releaseReasons] ?? "COMPENSATION";
      const outcome = await store.release(orderId, reason);
      if (outcome.kind === "nothing") {
        log.warn({ orderId, state: outcome.state }, "release found nothing to release");
        return;
      }
      // Counted after the commit, once: a redelivery answers from the recorded release (replayed).
      if (reason === "EXPIRED" && !outcome.replayed) afterCommit(() => Promise.resolve(deps.reservationsExpired?.inc()));
      await publishReleased(out, orderId, outcome.reservationId, outcome.lines, reasonOf(reason));
    },
  };
}
