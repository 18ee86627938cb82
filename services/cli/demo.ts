/**
 * `orderflow demo` — the seed's three scenarios against a running system (`make up`): a happy
 * order of two items, a declined card, and an out-of-stock order. Prints each order's timeline and
 * exits 1 if an order does not end the way its scenario says. Each order is placed and followed with
 * its customer's token, as the shop's front end would.
 */
import { randomUUID } from "node:crypto";
import { Command } from "commander";
import { orderApiOf, output, type ContextFactory, type OrderApi } from "./context.ts";
import { orderBody, testCards, type OrderBody, type OrderLineBody } from "./samples.ts";
import { bearer } from "./tokens.ts";

interface Scenario {
  readonly title: string;
  readonly expect: { status: string; reason?: string };
  readonly order: OrderBody;
}

const order = (items: OrderLineBody[], card: string) => orderBody({ customerId: `demo-${randomUUID().slice(0, 6)}`, email: "demo@example.com", items, card });

export const scenarios: readonly Scenario[] = [
  {
    title: "1. Happy path: two items, paid, reserved, confirmed",
    expect: { status: "COMPLETED" },
    order: order([{ product_id: "laptop", quantity: 1, price: "999.99" }, { product_id: "mouse", quantity: 1, price: "25.00" }], testCards.success),
  },
  {
    title: "2. Payment failure: declined card, stock released, customer told",
    expect: { status: "FAILED", reason: "PAYMENT" },
    order: order([{ product_id: "keyboard", quantity: 1, price: "89.99" }], testCards.declined),
  },
  {
    title: "3. Inventory shortage: 1000 of a rare item, charge refunded, customer told",
    expect: { status: "FAILED", reason: "INVENTORY" },
    order: order([{ product_id: "rare_item", quantity: 1000, price: "99.99" }], testCards.success),
  },
];

interface Timeline {
  readonly orderId: string;
  readonly status: string;
  readonly failure_reason?: string;
  readonly events: { occurred_at: string; summary: string }[];
}

async function run({ baseUrl: api, credentials }: OrderApi, scenario: Scenario, timeoutMs: number): Promise<Timeline> {
  const auth = bearer(await credentials.forCustomer(scenario.order.customer_id));
  const res = await fetch(`${api}/orders`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify(scenario.order) });
  if (res.status !== 202) throw new Error(`${scenario.title}: POST /orders answered ${res.status}: ${await res.text()}`);
  const { order_id: orderId } = (await res.json()) as { order_id: string };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await fetch(`${api}/orders/${orderId}`, { headers: auth });
    const body = view.status === 200 ? ((await view.json()) as { status: string; failure_reason?: string; refunded: boolean }) : undefined;
    const history = await fetch(`${api}/orders/${orderId}/events`, { headers: auth });
    const events = history.status === 200 ? ((await history.json()) as Timeline).events : [];
    const ended = body !== undefined && ["COMPLETED", "FAILED", "CANCELLED"].includes(body.status);
    const refundedIfNeeded = body?.failure_reason !== "INVENTORY" || body.refunded;
    if ((ended && refundedIfNeeded) || Date.now() > deadline) {
      return { orderId, status: body?.status ?? "UNKNOWN", ...(body?.failure_reason ? { failure_reason: body.failure_reason } : {}), events };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function demoCommand(context: ContextFactory): Command {
  return new Command("demo")
    .description("run the seed's three scenarios against a running system and print their timelines")
    .option("--api <url>", "order API (default: ORDER_API_URL, else http://127.0.0.1:8080)")
    .option("--timeout <ms>", "how long each order may take", "30000")
    .action(async (options: { api?: string; timeout: string }) => {
      const ctx = context();
      const api = orderApiOf({ ...ctx.settings, orderApiUrl: options.api ?? ctx.settings.orderApiUrl });
      const results = [];
      const lines: string[] = [];
      for (const scenario of scenarios) {
        const timeline = await run(api, scenario, Number(options.timeout));
        const ok = timeline.status === scenario.expect.status && timeline.failure_reason === scenario.expect.reason;
        results.push({ scenario: scenario.title, ok, ...timeline });
        const start = Date.parse(timeline.events[0]?.occurred_at ?? new Date().toISOString());
        lines.push(`\n${scenario.title}`, `   order ${timeline.orderId} → ${timeline.status}${timeline.failure_reason ? ` (${timeline.failure_reason})` : ""} ${ok ? "✓" : "✗ expected " + JSON.stringify(scenario.expect)}`);
        for (const e of timeline.events) lines.push(`   +${String(Date.parse(e.occurred_at) - start).padStart(5)} ms  ${e.summary}`);
      }
      output(ctx, { results }, lines);
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}
