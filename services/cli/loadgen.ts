/**
 * The load generator's engine, independent of what it drives: an open-loop schedule (order i is due
 * at start + i/rate, sent then whatever the answers do), a closed loop (N orders, C in flight), and a
 * ramp that raises the rate until it is no longer sustainable. Each order's latency runs from its
 * scheduled send time — a stall in the system or in the sender shows, it is not hidden (coordinated
 * omission) — to its end observed on the terminal topics, and goes into an HDR histogram.
 */
import { build, type Histogram } from "hdr-histogram-js";

/** What the engine drives: `send` starts order `index` and resolves with the id its end will carry. */
export interface LoadTarget {
  send(index: number): Promise<string>;
}

/** How an order ended, as seen on a terminal topic. */
export interface End {
  readonly id: string;
  readonly outcome: string;
  readonly reason?: string;
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** One second of a run: orders sent (scheduled) and orders that ended, by outcome. */
export interface Second {
  readonly second: number;
  sent: number;
  ended: Record<string, number>;
  /** p99 of the orders that ended in this second, ms. */
  p99?: number;
}

/** What a run measured. */
export interface RunResult {
  readonly sent: number;
  readonly accepted: number;
  /** Sends that failed (the API refused or did not answer), by reason. */
  readonly errors: Record<string, number>;
  readonly ended: Record<string, number>;
  readonly reasons: Record<string, number>;
  /** Accepted orders with no end seen within the drain time. */
  readonly unfinished: number;
  readonly latencyMs: Percentiles;
  /** Orders that ended per second, between the first send and the last end. */
  readonly throughput: number;
  readonly seconds: readonly Second[];
  readonly durationS: number;
}

const MICROS = 1000;

function histogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

/** The percentiles of a histogram of microseconds, in milliseconds. */
export function percentilesOf(h: Histogram): Percentiles {
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);

/**
 * Matches sends to ends: each accepted order's scheduled time, ends that arrived before the send
 * was even answered, and what was measured. One per run (or ramp step).
 */
export class Measurement {
  readonly #scheduled = new Map<string, number>();
  /** Ends seen for ids not (yet) known: the answer to the send may come after the end. */
  readonly #early = new Map<string, { end: End; atMs: number }>();
  readonly #waiters = new Map<string, () => void>();
  readonly #latency = histogram();
  readonly #perSecond = new Map<number, { second: Second; latency: Histogram }>();
  readonly #startMs: number;
  #sent = 0;
  #accepted = 0;
  readonly #errors: Record<string, number> = {};
  readonly #ended: Record<string, number> = {};
  readonly #reasons: Record<string, number> = {};
  #lastEndMs = 0;

  constructor(
    readonly now: () => number,
    startMs = now(),
  ) {
    this.#startMs = startMs;
  }

  #secondOf(atMs: number) {
    const index = Math.floor((atMs - this.#startMs) / 1000);
    let entry = this.#perSecond.get(index);
    if (entry === undefined) {
      entry = { second: { second: index, sent: 0, ended: {} }, latency: histogram() };
      this.#perSecond.set(index, entry);
    }
    return entry;
  }

  sent(scheduledMs: number): void {
    this.#sent += 1;
    this.#secondOf(scheduledMs).second.sent += 1;
  }

  failed(reason: string): void {
    bump(this.#errors, reason);
  }

  accepted(id: string, scheduledMs: number): void {
    this.#accepted += 1;
    const early = this.#early.get(id);
    if (early === undefined) {
      this.#scheduled.set(id, scheduledMs);
    } else {
      this.#early.delete(id);
      this.#record(early.end, scheduledMs, early.atMs);
    }
  }

  /** An end seen on a terminal topic; ends of orders this run did not send stay unmatched. */
  ended(end: End): void {
    const atMs = this.now();
    const scheduledMs = this.#scheduled.get(end.id);
    if (scheduledMs === undefined) {
      // Bounded: ends of other clients' orders are not ours to keep forever.
      if (this.#early.size > 100_000) this.#early.delete(this.#early.keys().next().value ?? "");
      this.#early.set(end.id, { end, atMs });
      return;
    }
    this.#scheduled.delete(end.id);
    this.#record(end, scheduledMs, atMs);
  }

  #record(end: End, scheduledMs: number, atMs: number): void {
    const micros = Math.max(1, Math.round((atMs - scheduledMs) * MICROS));
    this.#latency.recordValue(micros);
    const { second, latency } = this.#secondOf(atMs);
    second.ended[end.outcome] = (second.ended[end.outcome] ?? 0) + 1;
    latency.recordValue(micros);
    bump(this.#ended, end.outcome);
    if (end.reason !== undefined) bump(this.#reasons, end.reason);
    this.#lastEndMs = Math.max(this.#lastEndMs, atMs);
    this.#waiters.get(end.id)?.();
    this.#waiters.delete(end.id);
  }

  /** Accepted orders still waiting for their end. */
  get outstanding(): number {
    return this.#scheduled.size;
  }

  get acceptedCount(): number {
    return this.#accepted;
  }

  /** Resolves when order `id` has ended (at once when it has). */
  endOf(id: string): Promise<void> {
    if (!this.#scheduled.has(id)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.set(id, resolve));
  }

  result(): RunResult {
    const endMs = Math.max(this.#lastEndMs, this.now());
    const seconds = [...this.#perSecond.values()]
      .sort((a, b) => a.second.second - b.second.second)
      .map(({ second, latency }) => ({ ...second, ...(latency.totalCount > 0 ? { p99: percentilesOf(latency).p99 } : {}) }));
    const total = Object.values(this.#ended).reduce((a, b) => a + b, 0);
    const durationS = Math.max(0.001, ((this.#lastEndMs > 0 ? this.#lastEndMs : endMs) - this.#startMs) / 1000);
    return {
      sent: this.#sent,
      accepted: this.#accepted,
      errors: { ...this.#errors },
      ended: { ...this.#ended },
      reasons: { ...this.#reasons },
      unfinished: this.#scheduled.size,
      latencyMs: percentilesOf(this.#latency),
      throughput: Math.round((total / durationS) * 10) / 10,
      seconds,
      durationS: Math.round(durationS * 10) / 10,
    };
  }
}

/** Waits `ms` on a timer (the schedule's own clock, not a test synchronisation). */
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sends one order and notes the answer; never rejects. */
async function sendOne(target: LoadTarget, m: Measurement, index: number, scheduledMs: number): Promise<string | undefined> {
  m.sent(scheduledMs);
  try {
    const id = await target.send(index);
    m.accepted(id, scheduledMs);
    return id;
  } catch (err) {
    m.failed(err instanceof Error ? err.message.slice(0, 80) : String(err));
    return undefined;
  }
}

/** Waits until every accepted order ended, or `drainMs` passed without all of them ending. */
async function drain(m: Measurement, drainMs: number): Promise<void> {
  const deadline = m.now() + drainMs;
  while (m.outstanding > 0 && m.now() < deadline) await pause(20);
}

export interface OpenLoopOptions {
  readonly rate: number;
  readonly durationS: number;
  /** How long to wait for the last orders to end. */
  readonly drainMs: number;
  /** Called about every 200 ms with orders sent so far. */
  readonly onProgress?: (sent: number, total: number, m: Measurement) => void;
  /** Index of the first order (so ramp steps do not reuse indexes). */
  readonly firstIndex?: number;
}

/** Sends `rate` orders a second for `durationS` on a fixed schedule, then drains. */
export async function runOpenLoop(target: LoadTarget, m: Measurement, options: OpenLoopOptions): Promise<RunResult> {
  const total = Math.round(options.rate * options.durationS);
  const interval = 1000 / options.rate;
  const start = m.now();
  const inFlight = new Set<Promise<unknown>>();
  let next = 0;
  let lastProgress = 0;
  while (next < total) {
    const now = m.now();
    while (next < total && start + next * interval <= now) {
      const sending = sendOne(target, m, (options.firstIndex ?? 0) + next, start + next * interval);
      inFlight.add(sending);
      void sending.then(() => inFlight.delete(sending));
      next += 1;
    }
    if (now - lastProgress >= 200) {
      options.onProgress?.(next, total, m);
      lastProgress = now;
    }
    if (next < total) await pause(Math.max(0, Math.min(5, start + next * interval - m.now())));
  }
  options.onProgress?.(next, total, m);
  await Promise.all(inFlight);
  await drain(m, options.drainMs);
  return m.result();
}

export interface ClosedLoopOptions {
  readonly orders: number;
  readonly concurrency: number;
  readonly drainMs: number;
  readonly onProgress?: (done: number, total: number, m: Measurement) => void;
}

/** Places `orders` orders with `concurrency` in flight: each worker sends its next when the last ended. */
export async function runClosedLoop(target: LoadTarget, m: Measurement, options: ClosedLoopOptions): Promise<RunResult> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < options.orders) {
      const index = next;
      next += 1;
      const id = await sendOne(target, m, index, m.now());
      if (id !== undefined) await Promise.race([m.endOf(id), pause(options.drainMs)]);
      done += 1;
      options.onProgress?.(done, options.orders, m);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  await drain(m, options.drainMs);
  return m.result();
}

export interface RampOptions {
  readonly startRate: number;
  /** Each step multiplies the rate by this (> 1). */
  readonly factor: number;
  readonly maxRate: number;
  readonly stepS: number;
  /** A step is sustainable when its p99 stays under this... */
  readonly p99BoundMs: number;
  readonly drainMs: number;
  readonly onStep?: (step: RampStep) => void;
}

/** One rate of a ramp and whether the system kept up with it. */
export interface RampStep {
  readonly rate: number;
  readonly result: RunResult;
  readonly sustainable: boolean;
  readonly why: string;
}

/**
 * Whether a step was sustained: nearly every accepted order ended within the bound after the
 * step (no growing backlog), no send failed, and p99 stayed under the bound.
 */
export function judgeStep(result: RunResult, p99BoundMs: number): { sustainable: boolean; why: string } {
  const failed = Object.values(result.errors).reduce((a, b) => a + b, 0);
  if (failed > 0) return { sustainable: false, why: `${failed} sends failed` };
  if (result.unfinished > result.accepted * 0.001) return { sustainable: false, why: `${result.unfinished} orders had not ended (backlog)` };
  if (result.latencyMs.p99 > p99BoundMs) return { sustainable: false, why: `p99 ${result.latencyMs.p99} ms > ${p99BoundMs} ms` };
  return { sustainable: true, why: `p99 ${result.latencyMs.p99} ms, every order ended` };
}

/** Raises the rate step by step until a step is not sustainable; returns every step measured. */
export async function runRamp(target: LoadTarget, now: () => number, subscribe: (m: Measurement) => void, options: RampOptions): Promise<RampStep[]> {
  const steps: RampStep[] = [];
  let index = 0;
  for (let rate = options.startRate; rate <= options.maxRate; rate = Math.round(rate * options.factor)) {
    const m = new Measurement(now);
    subscribe(m);
    const result = await runOpenLoop(target, m, { rate, durationS: options.stepS, drainMs: options.drainMs, firstIndex: index });
    index += result.sent;
    const step = { rate, result, ...judgeStep(result, options.p99BoundMs) };
    steps.push(step);
    options.onStep?.(step);
    if (!step.sustainable) break;
  }
  return steps;
}

/** The highest rate of a ramp that was sustained (0 when none was). */
export function sustainableRate(steps: readonly RampStep[]): number {
  return steps.filter((s) => s.sustainable).reduce((best, s) => Math.max(best, s.rate), 0);
}
