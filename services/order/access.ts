/**
 * What an authenticated caller may do with the order API's core, for both transports: a customer
 * places orders only in its own name (403 otherwise) within the per-client rate limit, and sees,
 * lists, watches, cancels and reads the history of only its own orders; anyone else's order is
 * answered exactly as an order that does not exist (NotFound), so that its existence is not
 * revealed. An operator may do all of it for every customer. WatchOrder streams are bounded in
 * number and lifetime (watch-slots.ts).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import type { Order, PlaceOrderRequest } from "../../gen/orderflow/v1/order_service_pb.ts";
import type { Caller } from "./auth.ts";
import type { Orders } from "./orders.ts";
import type { PlaceLimiter } from "./rate-limit.ts";
import type { WatchSlots } from "./watch-slots.ts";

/** Whether `caller` may see an order of `customerId`: its own, or any for an operator. */
export function maySee(caller: Caller, customerId: string): boolean {
  return caller.operator || caller.subject === customerId;
}

/** The order API's operations on behalf of a caller. */
export function scopedOrders(orders: Orders, limiter: PlaceLimiter, watchSlots: WatchSlots) {
  /** The order if the caller may see it; NotFound, word for word as for a missing order, if not. */
  async function visible(caller: Caller, orderId: string): Promise<Order> {
    const order = await orders.getOrder(orderId);
    if (!maySee(caller, order.customerId)) throw new ConnectError(`order ${orderId} not found`, Code.NotFound);
    return order;
  }

  return {
    /** The caller knows which customer it is, so a refusal here reveals nothing: 403 with the reason. */
    async placeOrder(caller: Caller, request: PlaceOrderRequest) {
      if (!maySee(caller, request.customerId)) {
        throw new ConnectError(`customer_id must be the token's subject (${caller.subject}): a customer places orders only in its own name`, Code.PermissionDenied);
      }
      await limiter.take(caller.subject);
      return orders.placeOrder(request);
    },

    getOrder: visible,

    /** An operator lists as asked; a customer its own orders, and asking for another's is refused (403). */
    async listOrders(caller: Caller, filter: { customerId: string; status: OrderStatus; pageSize: number; pageToken: string }) {
      if (!caller.operator && filter.customerId !== "" && filter.customerId !== caller.subject) {
        throw new ConnectError("a customer lists only its own orders: leave customer_id out or set it to the token's subject", Code.PermissionDenied);
      }
      return orders.listOrders(caller.operator ? filter : { ...filter, customerId: caller.subject });
    },

    async cancelOrder(caller: Caller, orderId: string, reason: string) {
      await visible(caller, orderId);
      return orders.cancelOrder(orderId, reason, caller.operator ? "operator" : "customer");
    },

    async listOrderEvents(caller: Caller, orderId: string) {
      await visible(caller, orderId);
      return orders.listOrderEvents(orderId);
    },

    /** Within the caller's and the process's stream limits; ends when the client leaves or the stream's lifetime is over. */
    async *watchOrder(caller: Caller, orderId: string, signal?: AbortSignal) {
      const slot = watchSlots.take(caller.subject, signal);
      try {
        await visible(caller, orderId);
        yield* orders.watchOrder(orderId, slot.signal);
      } finally {
        slot.close();
      }
    },
  };
}

export type ScopedOrders = ReturnType<typeof scopedOrders>;
