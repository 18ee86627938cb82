/**
 * The sagas this process wrote or read lately, with the version they were stored at, so a handler
 * normally decides on memory and stores with one script call. It is only a guess about Redis:
 * every write checks the version (store.ts), and a stale copy — another instance or the timer
 * wrote meanwhile, or an operator retried a compensation — costs one more round trip, never a
 * wrong decision. A miss (a restart, an evicted order) reads Redis. Bounded: least recently used
 * first out, and a saga that is over and waits on nothing leaves at once.
 */
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { nextDueMs } from "./saga.ts";
import type { Versioned } from "./store.ts";

const settled = new Set([OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED]);

export class RecentSagas {
  readonly #entries = new Map<string, Versioned>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.#entries.size;
  }

  get(orderId: string): Versioned | undefined {
    const found = this.#entries.get(orderId);
    if (found !== undefined) {
      this.#entries.delete(orderId);
      this.#entries.set(orderId, found);
    }
    return found;
  }

  /** Remembers what Redis holds for the order (after a write, or as read). */
  remember(orderId: string, stored: Versioned): void {
    this.#entries.delete(orderId);
    const state = stored.saga?.state;
    if (state === undefined || (settled.has(state.status) && nextDueMs(state) === undefined)) return;
    this.#entries.set(orderId, stored);
    if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!);
  }
}

/**
 * Runs work for one key after the work queued before it for that key (answers for one order arrive
 * on several topics at once): same-order decisions of this process never race each other for the
 * version, and their records are sent in the order they were decided.
 */
export function keyedQueue(): <T>(key: string, work: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key, work) => {
    const run = (tails.get(key) ?? Promise.resolve()).then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
}
