/**
 * A steady order load for the fault suite: places orders over the REST API at a fixed rate, spread
 * over every order instance, with a seeded mix of cards (good, declined, no funds, flaky), basket
 * sizes, a scarce SKU (shortages and refunds) and a few cancellations. A request that fails or
 * answers 503 is retried with the same Idempotency-Key, as a real client would, so an order is
 * either accepted once or never — what was accepted is what the checker must account for, and so
 * is every cancel answered 202.
 */
import { randomUUID } from "node:crypto";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { formatMinor } from "../../services/order/money.ts";
import { sampleOrder, testCards, type OrderBody, type SampleMix } from "../../services/cli/samples.ts";
import { bearer, type OrderApiCredentials } from "../../services/cli/tokens.ts";

/** The SKUs the load orders, as the suite seeds them. */
export const loadCatalog = [
  { sku: "chaos_common", name: "Common", currency: "USD", priceMinor: 1999n, stock: 10_000_000 },
  { sku: "chaos_other", name: "Other", currency: "USD", priceMinor: 4550n, stock: 10_000_000 },
  { sku: "chaos_scarce", name: "Scarce", currency: "USD", priceMinor: 9900n, stock: 150 },
] as const;

const [common, other, scarce] = loadCatalog.map((p) => ({ sku: p.sku, price: formatMinor(p.priceMinor, p.currency) }));

/** Mostly good cards, some declined, short of funds or flaky; baskets of 1–3 lines, 15% led by the scarce SKU. */
const mix: SampleMix = {
  products: [common, other],
  scarce: { product: scarce, percent: 15 },
  cards: [
    { card: testCards.success, weight: 85 },
    { card: testCards.declined, weight: 7 },
    { card: testCards.insufficientFunds, weight: 5 },
    { card: testCards.transient, weight: 3 },
  ],
  currency: "USD",
  customerPrefix: "load",
  customers: 500,
  email: "load@example.com",
  maxLines: 3,
  maxQuantity: 2,
};

export interface LoadOptions {
  readonly apiUrls: readonly string[];
  /** The tokens the load sends: each order and its cancel as the order's customer. */
  readonly credentials: OrderApiCredentials;
  readonly ratePerSecond: number;
  readonly rng: RandomGenerator;
  /** Share of orders (percent) that are cancelled right after they were accepted. */
  readonly cancelPercent?: number;
}

export interface LoadCounts {
  readonly accepted: number;
  /** Attempts that were answered with an error or not at all (each retried). */
  readonly retried: number;
  /** Orders given up after every retry failed (never accepted, so not owed an outcome). */
  readonly abandoned: number;
  readonly cancelRequests: number;
  /** Cancels the API answered 202: each must take effect (the checker's cancel rule). */
  readonly cancelsAccepted: number;
  /** Orders the API refused (4xx other than 409): the load's mistake, so a failed run. */
  readonly refused: readonly string[];
}

const MAX_TRIES = 20;

export class OrderLoad {
  readonly accepted = new Map<string, number>();
  /** Order ids whose cancel was answered 202. */
  readonly cancelsAccepted = new Set<string>();
  #retried = 0;
  #abandoned = 0;
  #cancels = 0;
  readonly #refused: string[] = [];
  #sent = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly options: LoadOptions) {}

  #body(): OrderBody {
    return sampleOrder(mix, (min, max) => uniformInt(this.options.rng, min, max));
  }

  /**
   * Places one order, retrying with its key until accepted or MAX_TRIES is reached; an accepted
   * order is counted with the load's (a fault's crafted order too). Resolves to its id if accepted.
   */
  async place(api: string, body: OrderBody, cancel: boolean): Promise<string | undefined> {
    const key = randomUUID();
    for (let attempt = 1; attempt <= MAX_TRIES; attempt += 1) {
      try {
        const auth = bearer(await this.options.credentials.forCustomer(body.customer_id));
        const response = await fetch(`${api}/orders`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": key, ...auth },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        if (response.status === 202 || response.status === 200) {
          const { order_id: orderId } = (await response.json()) as { order_id: string };
          this.accepted.set(orderId, Date.now());
          if (cancel) {
            this.#cancels += 1;
            // Only a 202 is a promise; a cancel not answered (or refused) owes nothing and is not retried.
            const answer = await fetch(`${api}/orders/${orderId}/cancel`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: "{}", signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
            if (answer?.status === 202) this.cancelsAccepted.add(orderId);
          }
          return orderId;
        }
        // 409: the same key is still being handled (an earlier try of ours); any other 4xx is our bug.
        if (response.status !== 409 && response.status < 500) {
          this.#refused.push(`${response.status}: ${await response.text()}`);
          return undefined;
        }
      } catch {
        // No answer (a timeout, a refused connection while the instance restarts): try again.
      }
      this.#retried += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** attempt))); // client backoff between retries
    }
    this.#abandoned += 1;
    return undefined;
  }

  /** Starts placing orders at the configured rate until stop(). */
  start(): void {
    this.#startedAt = Date.now();
    const { apiUrls, ratePerSecond, cancelPercent = 2 } = this.options;
    this.#timer = setInterval(() => {
      const due = Math.floor(((Date.now() - this.#startedAt) / 1000) * ratePerSecond);
      for (; this.#sent < due; this.#sent += 1) {
        const api = apiUrls[this.#sent % apiUrls.length];
        const cancel = uniformInt(this.options.rng, 1, 100) <= cancelPercent;
        const placing = this.place(api, this.#body(), cancel).then(() => undefined).finally(() => this.#inFlight.delete(placing));
        this.#inFlight.add(placing);
      }
    }, 20);
  }

  /** Stops placing new orders and waits for those in flight to be accepted or given up. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#inFlight]);
  }

  counts(): LoadCounts {
    return { accepted: this.accepted.size, retried: this.#retried, abandoned: this.#abandoned, cancelRequests: this.#cancels, cancelsAccepted: this.cancelsAccepted.size, refused: [...this.#refused] };
  }
}
