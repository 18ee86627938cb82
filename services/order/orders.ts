/**
 * The order API's core, shared by the REST routes and the Connect service: place (validated,
 * idempotent by key, on Kafka before it answers), read, list, cancel, history, watch, catalog.
 * It speaks in proto messages and throws ConnectError with a Code; the transports only translate.
 */
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { createValidator, violationsToProto } from "@bufbuild/protovalidate";
import { ExponentialBackoff, handleAll, retry } from "cockatiel";
import { ViolationsSchema, type Violations } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { type FailureReason, OrderStatus, PaymentMethod } from "../../gen/orderflow/v1/common_pb.ts";
import { OrderCancelRequestedSchema, OrderCreatedSchema, type OrderCreated } from "../../gen/orderflow/v1/events_pb.ts";
import {
  OrderSchema,
  PlaceOrderRequestSchema,
  ProductSchema,
  type Order,
  type OrderEvent,
  type PlaceOrderRequest,
  type Product,
} from "../../gen/orderflow/v1/order_service_pb.ts";
import { newEventId } from "../../lib/codec/envelope.ts";
import { TransientError, messageOf } from "../../lib/errors.ts";
import type { Config } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import type { Publisher } from "../../lib/kafka/publisher.ts";
import { IdempotencyKeys, type Binding } from "./idempotency.ts";
import { AmountError, formatMinor, parseAmount } from "./money.ts";
import type { OrderProjection } from "./projection.ts";

/** Turns a card number into a gateway token at the edge; the number goes no further. */
export interface Tokenizer {
  tokenize(cardNumber: string): Promise<{ token: string; last4: string }>;
}

/** One wrong field of a request. */
export interface FieldViolation {
  readonly field: string;
  readonly message: string;
}

/** InvalidArgument carrying every violation (REST renders them as a 400 body). */
export class InvalidRequestError extends ConnectError {
  /** `detail` (buf.validate.Violations) reaches Connect and gRPC clients as a typed error detail. */
  constructor(
    readonly violations: readonly FieldViolation[],
    detail?: Violations,
  ) {
    super(
      violations.map((v) => `${v.field}: ${v.message}`).join("; "),
      Code.InvalidArgument,
      undefined,
      detail === undefined ? undefined : [{ desc: ViolationsSchema, value: detail }],
    );
  }
}

/**
 * The violations an error carries, if it is an InvalidRequestError. (ConnectError brands
 * `instanceof` by name, so every ConnectError would pass `instanceof InvalidRequestError`.)
 */
export function violationsOf(err: unknown): readonly FieldViolation[] | undefined {
  const violations = (err as { violations?: unknown } | null)?.violations;
  return err instanceof ConnectError && Array.isArray(violations) ? (violations as FieldViolation[]) : undefined;
}

const validator = createValidator();
/** The largest amount an int64 of minor units holds (Money.amount_minor). */
const MAX_AMOUNT_MINOR = 2n ** 63n - 1n;
const terminal = new Set([OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED]);
/**
 * Orders one ListOrders page looks at, at most. With a status filter that few orders match, the
 * page ends here, with a token to go on, instead of scanning the whole listing in one request.
 */
export const MAX_SCANNED_PER_PAGE = 1000;

/** Tries of the accept-time view write: three, 100 ms then 200 ms apart (plus jitter). */
const acceptedViewRetry = retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) });

/** Validates a request message against its schema's rules; throws InvalidRequestError naming each field. */
export function assertRequestValid<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return;
  if (result.kind === "error") throw new ConnectError(result.error.message, Code.Internal);
  const [detail] = violationsToProto(result.violations);
  throw new InvalidRequestError(result.violations.map((v) => ({ field: pathToString(v.field) || "(request)", message: v.message })), detail);
}

export interface OrdersDeps {
  readonly config: Pick<Config, "idempotency">;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly publisher: Publisher;
  readonly projection: OrderProjection;
  readonly tokenizer: Tokenizer;
  readonly log: Logger;
  /** How often WatchOrder looks for a change. */
  readonly watchIntervalMs?: number;
}

/** A stored view → the API's Order message. */
export function toOrder(view: Record<string, string>): Order {
  const status = Number(view["status"] ?? OrderStatus.PENDING) as OrderStatus;
  const items = JSON.parse(view["items"] ?? "[]") as { product_id: string; quantity: number; price: string }[];
  return create(OrderSchema, {
    orderId: view["order_id"] ?? "",
    customerId: view["customer_id"] ?? "",
    status,
    failureReason: Number(view["failure_reason"] ?? 0) as FailureReason,
    failureDetail: view["failure_detail"] ?? "",
    currency: view["currency"] ?? "",
    total: view["total"] ?? "",
    items: items.map((i) => ({ productId: i.product_id, quantity: i.quantity, price: i.price })),
    cardLast4: view["card_last4"] ?? "",
    refunded: view["refunded"] === "1",
    ...(view["created_at"] ? { createdAt: timestampFromDate(new Date(view["created_at"])) } : {}),
    ...(view["updated_at"] ? { updatedAt: timestampFromDate(new Date(view["updated_at"])) } : {}),
    version: BigInt(view["version"] ?? "0"),
  });
}

export function createOrders(deps: OrdersDeps) {
  const { redis, keys, publisher, projection, tokenizer, log } = deps;
  const idempotency = new IdempotencyKeys(redis, keys, deps.config.idempotency);

  async function product(sku: string): Promise<Product | undefined> {
    const [info, available] = await Promise.all([redis.hgetall(keys("product", sku)), redis.hget(keys("stock", sku), "available")]);
    if (info["price_minor"] === undefined) return undefined;
    const currency = info["currency"] ?? "USD";
    return create(ProductSchema, {
      sku,
      name: info["name"] ?? sku,
      currency,
      price: formatMinor(BigInt(info["price_minor"]), currency),
      available: BigInt(available ?? "0"),
    });
  }

  /** Converts and checks what validation rules cannot: amounts per currency. */
  function priced(request: PlaceOrderRequest) {
    const violations: FieldViolation[] = [];
    const items = request.items.map((item, index) => {
      try {
        return { productId: item.productId, quantity: item.quantity, unitPrice: { currencyCode: request.currency, amountMinor: parseAmount(item.price, request.currency) } };
      } catch (err) {
        if (!(err instanceof AmountError)) throw err;
        violations.push({ field: err.message.includes("currency") ? "currency" : `items[${index}].price`, message: err.message });
        return undefined;
      }
    });
    if (violations.length > 0) throw new InvalidRequestError(violations);
    const lines = items.filter((i) => i !== undefined);
    const total = lines.reduce((sum, line) => sum + line.unitPrice.amountMinor * BigInt(line.quantity), 0n);
    if (total > MAX_AMOUNT_MINOR) {
      throw new InvalidRequestError([{ field: "items", message: `the order's total (quantity × price over the lines) exceeds the largest amount, ${formatMinor(MAX_AMOUNT_MINOR, request.currency)}` }]);
    }
    return { lines, total };
  }

  async function instrument(request: PlaceOrderRequest) {
    const payment = request.payment;
    if (payment?.cardNumber) {
      try {
        const { token, last4 } = await tokenizer.tokenize(payment.cardNumber);
        return { method: PaymentMethod.CARD, token, cardLast4: last4 };
      } catch (err) {
        throw new InvalidRequestError([{ field: "payment.card_number", message: messageOf(err) }]);
      }
    }
    return { method: PaymentMethod.TOKEN, token: payment?.token ?? "", cardLast4: "" };
  }

  /**
   * The order a request is for: a fresh one without a key; with one, the order its first attempt
   * bound it to — to publish (first attempt, or a takeover after a crash or an unacknowledged
   * publish) or, once acknowledged, to answer with.
   */
  async function bindingOf(request: PlaceOrderRequest): Promise<{ binding: Binding; replayed: boolean }> {
    const fresh = { orderId: randomUUID(), eventId: newEventId(), createdAtMs: Date.now() };
    const key = request.idempotencyKey;
    if (!key) return { binding: fresh, replayed: false };
    const claim = await idempotency.claim(key, await idempotency.fingerprint(request), fresh);
    switch (claim.kind) {
      case "conflict":
        throw new ConnectError("this Idempotency-Key was used with another request body", Code.AlreadyExists);
      case "busy":
        throw new ConnectError("a request with this Idempotency-Key is still in progress; retry shortly", Code.Aborted);
      default:
        return { binding: claim.binding, replayed: claim.kind === "done" };
    }
  }

  /**
   * Marks the key's order acknowledged. The order is on Kafka already: if this write fails, the key
   * stays pending and a retry republishes the same order once the lease is over, so it is logged.
   */
  async function completeKey(key: string, orderId: string): Promise<void> {
    try {
      await idempotency.complete(key, orderId);
    } catch (err) {
      log.warn({ orderId, err: messageOf(err) }, "the Idempotency-Key was not marked done; a retry will republish the same order");
    }
  }

  /**
   * Applies the accepted order's orders.created to the read model, with the record's event id and
   * time, so that its replay (live or in a rebuild) changes nothing. Tried again (a few times, with
   * backoff) before answering: the owner's GET and cancel find the order by this view, and without
   * it they answer 404 until the lifecycle events make it. The order is on Kafka already: if every
   * try fails, those events still make its view, so it is logged, not thrown.
   */
  async function projectAccepted(created: OrderCreated, accepted: { eventId: string; at: Date }): Promise<void> {
    const envelope = { eventId: accepted.eventId, eventType: OrderCreatedSchema.typeName, orderId: created.orderId, occurredAt: accepted.at };
    try {
      await acceptedViewRetry.execute(() => projection.apply("orders.created", { envelope, message: created }));
    } catch (err) {
      log.warn({ orderId: created.orderId, err: messageOf(err) }, "the accepted order's view was not written; its lifecycle events will make it");
    }
  }

  return {
    /**
     * Validates, tokenizes, binds the Idempotency-Key (if any) to an order id, publishes
     * orders.created under that id (acked), writes the order's PENDING view, and answers with the
     * id. A publish that is not acknowledged leaves the binding (its record may still be written):
     * the retry republishes the same order id and event id, which the saga and the read model
     * dedup. Redis round trips in sequence: with a key two (the claim; then the view and the key's
     * completion, sent together) plus, once per process, the fingerprint secret; without one, one.
     */
    async placeOrder(request: PlaceOrderRequest): Promise<{ orderId: string; status: OrderStatus; replayed: boolean }> {
      assertRequestValid(PlaceOrderRequestSchema, request);
      const { lines, total } = priced(request);
      const key = request.idempotencyKey;
      // Before the claim: a refused card leaves the key unbound.
      const payment = await instrument(request);
      const { binding, replayed } = await bindingOf(request);
      const { orderId, eventId } = binding;
      if (replayed) return { orderId, status: OrderStatus.PENDING, replayed: true };
      const accepted = { eventId, at: new Date(binding.createdAtMs) };
      const created = create(OrderCreatedSchema, {
        orderId,
        customerId: request.customerId,
        customerEmail: request.customerEmail,
        items: lines,
        total: { currencyCode: request.currency, amountMinor: total },
        payment,
        ...(request.shippingAddress === undefined ? {} : { shippingAddress: request.shippingAddress }),
        idempotencyKey: key,
        createdAt: timestampFromMs(binding.createdAtMs),
      });
      try {
        await publisher.publish("orders.created", OrderCreatedSchema, created, { orderId, eventId });
      } catch (err) {
        // Unreleased, the lease simply runs out.
        if (key) await idempotency.release(key, orderId).catch((releaseErr: unknown) => log.warn({ orderId, err: messageOf(releaseErr) }, "the Idempotency-Key's lease was not released"));
        if (err instanceof ConnectError) throw err;
        if (err instanceof TransientError) {
          log.warn({ orderId, err: messageOf(err) }, "order not confirmed: Kafka did not acknowledge");
          const message = key
            ? "the order could not be confirmed right now; retry with the same Idempotency-Key, it stays bound to this order"
            : "the order could not be confirmed right now and may or may not be recorded; send an Idempotency-Key to retry safely";
          throw new ConnectError(message, Code.Unavailable, undefined, undefined, err);
        }
        throw ConnectError.from(err);
      }
      await Promise.all([projectAccepted(created, accepted), key ? completeKey(key, orderId) : undefined]);
      log.info({ orderId, lines: lines.length }, "order accepted");
      return { orderId, status: OrderStatus.PENDING, replayed: false };
    },

    async getOrder(orderId: string): Promise<Order> {
      const view = await projection.view(orderId);
      if (view === undefined) throw new ConnectError(`order ${orderId} not found`, Code.NotFound);
      return toOrder(view);
    },

    async listOrders(filter: { customerId: string; status: OrderStatus; pageSize: number; pageToken: string }) {
      const size = filter.pageSize > 0 ? filter.pageSize : 50;
      let offset = Number(filter.pageToken || "0");
      if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidRequestError([{ field: "page_token", message: "not a token this API gave out" }]);
      const orders: Order[] = [];
      let scanned = 0;
      while (orders.length < size && scanned < MAX_SCANNED_PER_PAGE) {
        const ids = await projection.ids(filter.customerId || undefined, offset, Math.min(size, MAX_SCANNED_PER_PAGE - scanned));
        if (ids.length === 0) return { orders, nextPageToken: "" };
        for (const id of ids) {
          offset += 1;
          scanned += 1;
          const view = await projection.view(id);
          if (view === undefined) continue;
          const order = toOrder(view);
          if (filter.status === OrderStatus.UNSPECIFIED || order.status === filter.status) orders.push(order);
          if (orders.length === size) break;
        }
      }
      return { orders, nextPageToken: String(offset) };
    },

    async cancelOrder(orderId: string, reason: string, requestedBy: string): Promise<Order> {
      const order = await this.getOrder(orderId);
      if (order.status === OrderStatus.FAILED || order.status === OrderStatus.CANCELLED) {
        throw new ConnectError(`order ${orderId} is already ${OrderStatus[order.status]}`, Code.FailedPrecondition);
      }
      await publisher.publish("orders.cancel.requested", OrderCancelRequestedSchema, { orderId, requestedBy, reason, requestedAt: timestampNow() }, { orderId });
      return order;
    },

    async listOrderEvents(orderId: string): Promise<OrderEvent[]> {
      await this.getOrder(orderId);
      return (await projection.history(orderId)).map((e) => ({
        $typeName: "orderflow.v1.OrderEvent",
        eventId: e.event_id,
        eventType: e.event_type,
        topic: e.topic,
        occurredAt: timestampFromDate(new Date(e.occurred_at)),
        summary: e.summary,
      }));
    },

    /** Yields the order now and after each change, until it is terminal or `signal` aborts. */
    async *watchOrder(orderId: string, signal?: AbortSignal): AsyncGenerator<Order> {
      let version = -1n;
      const interval = deps.watchIntervalMs ?? 200;
      while (!signal?.aborted) {
        const view = await projection.view(orderId);
        if (view === undefined && version === -1n) throw new ConnectError(`order ${orderId} not found`, Code.NotFound);
        const order = view === undefined ? undefined : toOrder(view);
        if (order !== undefined && order.version !== version) {
          version = order.version;
          yield order;
          if (terminal.has(order.status)) return;
        }
        await new Promise((resolve) => setTimeout(resolve, interval));
      }
    },

    async listProducts(): Promise<Product[]> {
      const skus = (await redis.smembers(keys("products"))).sort();
      const products = await Promise.all(skus.map((sku) => product(sku)));
      return products.filter((p) => p !== undefined);
    },

    async getProduct(sku: string): Promise<Product> {
      const found = await product(sku);
      if (found === undefined) throw new ConnectError(`product ${sku} not found`, Code.NotFound);
      return found;
    },
  };
}

export type Orders = ReturnType<typeof createOrders>;
