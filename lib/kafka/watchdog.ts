/**
 * The stall watchdog: notices a consumer that stopped being fed while its lag grows (a stuck
 * fetch, a lost assignment, a wedged handler) so health can say so before the backlog is large.
 */

/** What the watchdog concluded at its last check. */
export interface StallReport {
  readonly stalled: boolean;
  /** Records waiting, summed over the assigned partitions, at the last check. */
  readonly lag: number;
  /** Milliseconds since a record was last handled (or since start). */
  readonly idleMs: number;
}

export interface StallWatchdogOptions {
  /** Lag of the group on its assigned partitions; rejects when the broker cannot be asked. */
  readonly measureLag: () => Promise<number>;
  /** Idle time after which a growing or non-zero lag counts as a stall. */
  readonly stallAfterMs: number;
  readonly now?: () => number;
}

/** Tracks progress; `check()` is called on a timer by the runner and by tests directly. */
export class StallWatchdog {
  #lastProgress: number;
  #lastLag = 0;
  #report: StallReport = { stalled: false, lag: 0, idleMs: 0 };
  readonly #now: () => number;

  constructor(private readonly options: StallWatchdogOptions) {
    this.#now = options.now ?? Date.now;
    this.#lastProgress = this.#now();
  }

  /** Records that a record was handled. */
  progressed(): void {
    this.#lastProgress = this.#now();
  }

  /** Measures lag and decides: stalled when idle too long while lag is non-zero and not shrinking. */
  async check(): Promise<StallReport> {
    const lag = await this.options.measureLag();
    const idleMs = this.#now() - this.#lastProgress;
    const stalled = idleMs >= this.options.stallAfterMs && lag > 0 && lag >= this.#lastLag;
    this.#lastLag = lag;
    this.#report = { stalled, lag, idleMs };
    return this.#report;
  }

  /** The last check's conclusion. */
  get report(): StallReport {
    return this.#report;
  }
}
