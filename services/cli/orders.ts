/**
 * `orderflow orders place|get|watch|rebuild` — place an order through the order API, read it with
 * its history, follow it to its end over the OrderService WatchOrder stream, and rebuild the order
 * read model from the log into a new generation that is swapped in (services/order/rebuild.ts).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Command, Option } from "commander";
import { Code, ConnectError } from "@connectrpc/connect";
import { FailureReason, OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { OrderProjection } from "../order/projection.ts";
import { rebuildProjection } from "../order/rebuild.ts";
import { emit, orderApiOf, output, positiveNumberOption, UsageError, type CliContext, type ContextFactory } from "./context.ts";
import { getOrder, listProducts, orderEvents, orderServiceClient, orderServiceError, postOrder, terminalStatuses, type RestOrder, type RestOrderEvent } from "./order-api.ts";
import { orderBody, testCards, type OrderLineBody } from "./samples.ts";

/** How long watch keeps asking for an order the read model does not have yet (it was just placed). */
const NOT_FOUND_GRACE_MS = 5_000;

/** A line as `--item sku:quantity[:price]` gives it; the price comes from the catalog when left out. */
interface ItemArg {
  readonly sku: string;
  readonly quantity: number;
  readonly price?: string;
}

/** Parses one --item and appends it to those before. */
export function parseItem(value: string, previous: readonly ItemArg[] = []): ItemArg[] {
  const match = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):([1-9]\d{0,3})(?::(\d{1,12}(?:\.\d{1,4})?))?$/.exec(value);
  if (match === null) throw new UsageError(`--item must be sku:quantity or sku:quantity:price (for example laptop:1), got ${JSON.stringify(value)}`);
  const [, sku = "", quantity = "", price] = match;
  return [...previous, { sku, quantity: Number(quantity), ...(price === undefined ? {} : { price }) }];
}

/** Lines with prices: those given, else the catalog's; an unknown SKU is an error naming it. */
async function priced(ctx: CliContext, items: readonly ItemArg[], currency: string): Promise<OrderLineBody[]> {
  const needCatalog = items.some((item) => item.price === undefined);
  const catalog = new Map(needCatalog ? (await listProducts(ctx.settings.orderApiUrl)).map((p) => [p.sku, p]) : []);
  return items.map((item) => {
    if (item.price !== undefined) return { product_id: item.sku, quantity: item.quantity, price: item.price };
    const product = catalog.get(item.sku);
    if (product === undefined) throw new Error(`unknown product ${JSON.stringify(item.sku)} — \`orderflow stock get\` lists the catalog (or give the price: ${item.sku}:${item.quantity}:PRICE)`);
    if (product.currency !== currency) throw new Error(`${item.sku} is priced in ${product.currency}, the order is in ${currency} (use --currency ${product.currency})`);
    return { product_id: item.sku, quantity: item.quantity, price: product.price };
  });
}

const statusLine = (o: { order_id: string; status: string; failure_reason?: string; failure_detail?: string }) =>
  `order ${o.order_id} ${o.status}${o.failure_reason ? ` (${o.failure_reason}${o.failure_detail ? `: ${o.failure_detail}` : ""})` : ""}`;

const eventLine = (e: RestOrderEvent) => `  ${(e.occurred_at ?? "?").padEnd(24)}  ${e.topic.padEnd(22)} ${e.summary}`;

function describeOrder(order: RestOrder, events: readonly RestOrderEvent[]): string[] {
  return [
    statusLine(order),
    `  customer ${order.customer_id}, total ${order.total} ${order.currency}, card ****${order.card_last4}${order.refunded ? ", refunded" : ""}`,
    `  created ${order.created_at ?? "?"}, updated ${order.updated_at ?? "?"}, version ${order.version}`,
    ...order.items.map((i) => `  ${i.quantity} × ${i.product_id} @ ${i.price}`),
    "events:",
    ...events.map(eventLine),
  ];
}

/** What a watch ended with. */
export interface WatchResult {
  readonly orderId: string;
  /** The last status seen; TIMEOUT when the order was not terminal in time. */
  readonly status: string;
}

/**
 * Follows an order over WatchOrder until it is terminal or `timeoutMs` passed, writing each new
 * status and each new event of its history as they appear. An order the read model does not have
 * is waited for `notFoundGraceMs` (all of the timeout for an order just placed), then reported.
 */
export async function watchOrder(ctx: CliContext, orderId: string, timeoutMs: number, notFoundGraceMs = NOT_FOUND_GRACE_MS): Promise<WatchResult> {
  const api = orderApiOf(ctx.settings);
  const base = api.baseUrl;
  const client = orderServiceClient(api);
  const signal = AbortSignal.timeout(timeoutMs);
  const notFoundUntil = Date.now() + Math.min(notFoundGraceMs, timeoutMs);
  const seenEvents = new Set<string>();
  let status = "UNKNOWN";
  let version = -1n;
  for (;;) {
    try {
      for await (const { order } of client.watchOrder({ orderId }, { signal })) {
        if (order === undefined || order.version === version) continue;
        version = order.version;
        status = OrderStatus[order.status];
        const failure = order.status === OrderStatus.FAILED ? { failure_reason: FailureReason[order.failureReason], failure_detail: order.failureDetail } : {};
        emit(ctx, { type: "status", order_id: orderId, status, ...failure, version: Number(order.version) }, statusLine({ order_id: orderId, status, ...failure }));
        for (const event of await orderEvents(api, orderId)) {
          if (seenEvents.has(event.event_id)) continue;
          seenEvents.add(event.event_id);
          emit(ctx, { type: "event", order_id: orderId, ...event }, eventLine(event));
        }
        if (terminalStatuses.has(status)) return { orderId, status };
      }
    } catch (err) {
      if (signal.aborted) {
        if (version === -1n) throw new Error(`order ${orderId} not found (the read model did not show it within ${timeoutMs / 1000} s)`);
        return { orderId, status: "TIMEOUT" };
      }
      if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw orderServiceError(base, err);
      if (Date.now() >= notFoundUntil) throw new Error(`order ${orderId} not found`);
      await sleep(200, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** Sets the exit code from a watch and explains a non-success on stderr. */
function concludeWatch(result: WatchResult, timeoutSeconds: number): void {
  if (result.status === "COMPLETED") return;
  process.exitCode = 1;
  if (result.status === "TIMEOUT") process.stderr.write(`orderflow: order ${result.orderId} did not finish within ${timeoutSeconds} s\n`);
}

const timeoutOption = () => new Option("--timeout <seconds>", "give up (exit 1) after this long").argParser(positiveNumberOption("--timeout")).default(60);

export function ordersCommand(context: ContextFactory): Command {
  const orders = new Command("orders").description("place, read and follow orders; the order read model");

  orders
    .command("place")
    .description("place an order through the order API and print its id (defaults: one laptop, a card that succeeds)")
    .option("--customer <id>", "customer id", "cli-customer")
    .option("--email <address>", "customer email", "customer@example.com")
    .option("--item <sku:quantity[:price]>", "a line, repeatable; the price defaults to the catalog's", parseItem, [])
    .option("--card <number>", `card number (${testCards.success} succeeds, ${testCards.declined} is declined)`, testCards.success)
    .option("--currency <code>", "ISO 4217 currency", "USD")
    .option("--idempotency-key <key>", "the same key and body place the order once")
    .option("--watch", "then follow it like `orders watch` (exit 0 only when it completes)")
    .addOption(timeoutOption())
    .addHelpText("after", "\nExample:\n  orderflow orders place --item laptop:1 --item mouse:2 --card 4000000000000002 --watch")
    .action(async (options: { customer: string; email: string; item: ItemArg[]; card: string; currency: string; idempotencyKey?: string; watch?: boolean; timeout: number }) => {
      const ctx = context();
      const items = await priced(ctx, options.item.length > 0 ? options.item : [{ sku: "laptop", quantity: 1 }], options.currency);
      const body = orderBody({ customerId: options.customer, email: options.email, currency: options.currency, items, card: options.card });
      const placed = await postOrder(orderApiOf(ctx.settings), body, options.idempotencyKey);
      if (!placed.accepted) throw new Error(placed.error);
      emit(ctx, { order_id: placed.orderId, status: "PENDING", replayed: placed.replayed }, placed.orderId);
      if (options.watch) concludeWatch(await watchOrder(ctx, placed.orderId, options.timeout * 1000, options.timeout * 1000), options.timeout);
    });

  orders
    .command("get <order-id>")
    .description("an order's current view and its event history")
    .action(async (orderId: string) => {
      const ctx = context();
      const api = orderApiOf(ctx.settings);
      const order = await getOrder(api, orderId);
      const events = await orderEvents(api, orderId);
      output(ctx, { order, events }, describeOrder(order, events));
    });

  orders
    .command("watch <order-id>")
    .description("follow an order until it is terminal, printing each status and event; exit 0 when COMPLETED, 1 when FAILED, CANCELLED or timed out")
    .addOption(timeoutOption())
    .action(async (orderId: string, options: { timeout: number }) => {
      const ctx = context();
      concludeWatch(await watchOrder(ctx, orderId, options.timeout * 1000), options.timeout);
    });

  orders
    .command("rebuild")
    .description("rebuild the order read model from the log into a new generation and swap it in; orders the log no longer has are kept, readers are served throughout")
    .action(async () => {
      const ctx = context();
      const redis = createRedis(ctx.config, ctx.log);
      const admin = ctx.kafka.admin();
      await admin.connect();
      try {
        const result = await rebuildProjection({ admin, config: ctx.config, projection: new OrderProjection(redis, keyspace(ctx.config.redisKeyPrefix), {}, ctx.config.redisLifetimes.readModelMs) });
        output(ctx, result, [`rebuilt ${result.orders} order(s) from ${result.eventsApplied} event(s); ${result.carriedOver} order(s) kept events the log no longer has`]);
      } finally {
        await admin.disconnect();
        redis.disconnect();
      }
    });
  return orders;
}
