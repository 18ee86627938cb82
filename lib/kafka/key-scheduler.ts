/**
 * Runs the records of one consumer concurrently by key: tasks of different keys run at the same
 * time, up to a limit; tasks of one key run one after another, in the order they were pushed. A
 * partition's records of different orders are thus handled in parallel while one order's records
 * keep their order (the key is the order id for order-keyed topics, the customer id for emails).
 * A running task may park its key while it waits for something slow (an outage): `settled()` then
 * no longer waits for that key's tasks, which still run in order once the task goes on.
 */

type Task = () => Promise<void>;

export class KeyedScheduler {
  readonly #limit: number;
  /** Per key, the tasks not yet finished; the first is running or waiting for a slot. */
  readonly #queues = new Map<string, Task[]>();
  /** Keys whose first task waits for a slot, oldest first. */
  #ready: string[] = [];
  #readyHead = 0;
  #running = 0;
  #pending = 0;
  /** Keys whose running task is parked. */
  readonly #parked = new Set<string>();
  #settled: (() => void)[] = [];
  #room: { below: number; resolve: () => void }[] = [];

  /** `limit`: tasks running at the same time at most. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`the scheduler's limit must be a positive integer, got ${limit}`);
    this.#limit = limit;
  }

  /** Tasks pushed and not yet finished (running or waiting). */
  get pending(): number {
    return this.#pending;
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running;
  }

  /** Queues `task` behind the unfinished tasks of `key`. A task must not reject; a rejection is dropped. */
  push(key: string, task: Task): void {
    this.#pending += 1;
    const queue = this.#queues.get(key);
    if (queue !== undefined) {
      queue.push(task);
      return;
    }
    this.#queues.set(key, [task]);
    this.#ready.push(key);
    this.#pump();
  }

  /** Resolves once no task is running or waiting, except the tasks of parked keys. */
  settled(): Promise<void> {
    if (this.#isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.#settled.push(resolve));
  }

  /**
   * Called by the running task of `key`: it waits for something slow. It gives up its slot (other
   * keys may run; a parked task must never hold up the tasks settled() waits for) and settled() no
   * longer waits for the key.
   */
  park(key: string): void {
    if (this.#parked.has(key) || !this.#queues.has(key)) return;
    this.#parked.add(key);
    this.#running -= 1;
    this.#notify();
    this.#pump();
  }

  /** The parked task of `key` goes on, in a slot again (even beyond the limit, briefly): settled() waits for it. */
  unpark(key: string): void {
    if (!this.#parked.delete(key)) return;
    this.#running += 1;
  }

  #isSettled(): boolean {
    let held = 0;
    for (const key of this.#parked) held += this.#queues.get(key)?.length ?? 0;
    return this.#pending === held;
  }

  /** Resolves once fewer than `below` tasks are pending. */
  room(below: number): Promise<void> {
    if (this.#pending < below) return Promise.resolve();
    return new Promise((resolve) => this.#room.push({ below, resolve }));
  }

  #pump(): void {
    while (this.#running < this.#limit && this.#readyHead < this.#ready.length) {
      const key = this.#ready[this.#readyHead];
      if (key === undefined) break;
      this.#readyHead += 1;
      this.#run(key);
    }
    if (this.#readyHead === this.#ready.length) {
      this.#ready = [];
      this.#readyHead = 0;
    }
  }

  #run(key: string): void {
    const queue = this.#queues.get(key);
    const task = queue?.[0];
    if (queue === undefined || task === undefined) return;
    this.#running += 1;
    const finished = () => {
      // A task that ends while parked gave its slot up already.
      if (!this.#parked.delete(key)) this.#running -= 1;
      this.#pending -= 1;
      queue.shift();
      if (queue.length === 0) this.#queues.delete(key);
      else this.#ready.push(key);
      this.#notify();
      this.#pump();
    };
    let started: Promise<void>;
    try {
      started = task();
    } catch {
      started = Promise.resolve();
    }
    started.then(finished, finished);
  }

  #notify(): void {
    if (this.#settled.length > 0 && this.#isSettled()) for (const resolve of this.#settled.splice(0)) resolve();
    if (this.#room.length > 0) {
      const waiting = this.#room;
      this.#room = [];
      for (const waiter of waiting) {
        if (this.#pending < waiter.below) waiter.resolve();
        else this.#room.push(waiter);
      }
    }
  }
}
