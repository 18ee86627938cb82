/**
 * Sample orders, as REST bodies for POST /orders: the one builder behind `orderflow orders place`,
 * `demo` and `generate`, and the fault suite's load (test/chaos/load.ts). Randomness comes in as a
 * function, so a caller chooses a seeded generator (reproducible runs) or Math.random.
 */

/** The simulated gateway's test cards (Stripe-style). */
export const testCards = {
  success: "4242424242424242",
  declined: "4000000000000002",
  insufficientFunds: "4000000000009995",
  transient: "4000000000000119",
} as const;

/** One line as the API takes it: the unit price is a decimal string in the order's currency. */
export interface OrderLineBody {
  readonly product_id: string;
  readonly quantity: number;
  readonly price: string;
}

/** The body of POST /orders (proto field names, see PlaceOrderRequest). */
export interface OrderBody {
  readonly customer_id: string;
  readonly customer_email: string;
  readonly currency: string;
  readonly items: readonly OrderLineBody[];
  readonly payment: { readonly method: "card"; readonly card_number: string };
}

/** An order body from its parts; currency defaults to USD. */
export function orderBody(order: { customerId: string; email: string; items: readonly OrderLineBody[]; card: string; currency?: string }): OrderBody {
  return {
    customer_id: order.customerId,
    customer_email: order.email,
    currency: order.currency ?? "USD",
    items: order.items,
    payment: { method: "card", card_number: order.card },
  };
}

/** A whole number in [min, max], both included. */
export type RandomInt = (min: number, max: number) => number;

/** RandomInt over Math.random, for runs that need not be reproducible. */
export const mathRandomInt: RandomInt = (min, max) => min + Math.floor(Math.random() * (max - min + 1));

/** A product sample orders may contain, at the price the catalog has for it. */
export interface SampleProduct {
  readonly sku: string;
  readonly price: string;
}

/** What sample orders are made of. */
export interface SampleMix {
  /** Products lines are drawn from, uniformly. */
  readonly products: readonly SampleProduct[];
  /** Cards by relative weight. */
  readonly cards: readonly { readonly card: string; readonly weight: number }[];
  /** A product the first line is, `percent` of the time (shortages, refunds). */
  readonly scarce?: { readonly product: SampleProduct; readonly percent: number };
  readonly currency: string;
  /** Customer ids are `<customerPrefix>-1` … `<customerPrefix>-<customers>`. */
  readonly customerPrefix: string;
  readonly customers: number;
  readonly email: string;
  /** Lines per order: 1 to maxLines; quantity per line: 1 to maxQuantity. */
  readonly maxLines: number;
  readonly maxQuantity: number;
}

/** One random order of `mix`. */
export function sampleOrder(mix: SampleMix, random: RandomInt): OrderBody {
  if (mix.products.length === 0) throw new Error("no products to order");
  const totalWeight = mix.cards.reduce((sum, c) => sum + c.weight, 0);
  const roll = random(1, totalWeight);
  let sum = 0;
  const card = mix.cards.find((c) => (sum += c.weight) >= roll)?.card ?? testCards.success;
  const lines = random(1, mix.maxLines);
  const items = Array.from({ length: lines }, (_, i) => {
    const product = mix.scarce !== undefined && i === 0 && random(1, 100) <= mix.scarce.percent ? mix.scarce.product : mix.products[random(0, mix.products.length - 1)];
    return { product_id: product.sku, quantity: random(1, mix.maxQuantity), price: product.price };
  });
  return orderBody({ customerId: `${mix.customerPrefix}-${random(1, mix.customers)}`, email: mix.email, currency: mix.currency, items, card });
}
