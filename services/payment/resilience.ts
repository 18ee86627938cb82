/**
 * Resilience around the gateway with cockatiel: retries with exponential backoff and jitter for
 * transient failures only, a circuit breaker that stops calling a failing processor, and a timeout
 * per call. The breaker opens on the share of failed calls among the last `breakerWindow` calls
 * (more than `breakerFailureRatio`), not on a run of consecutive failures: with hundreds of charges
 * in flight, a few cards that fail transiently (the flaky test card, 3% of the fault suite's load,
 * four attempts each) made runs of ten consecutive failures often enough to keep a healthy processor
 * switched off for minutes, the half-open trial itself often drawn from those cards. An open breaker surfaces as BreakerOpenError, which is retriable: the payment command
 * waits and is delivered again, so an outage delays orders instead of failing them.
 */
import {
  CircuitState,
  CountBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  wrap,
  TaskCancelledError,
  BrokenCircuitError,
} from "cockatiel";
import { TransientError, isRetriable } from "../../lib/errors.ts";

export interface GatewayPolicyOptions {
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly timeoutMs: number;
  /** Calls the breaker judges over (and the fewest before it may open). */
  readonly breakerWindow: number;
  /** Share of failed calls in the window above which it opens (0.5 when not given). */
  readonly breakerFailureRatio?: number;
  readonly breakerHalfOpenAfterMs: number;
}

export type BreakerState = "closed" | "open" | "half-open";

/** The breaker is open: the processor is not called for now. Retriable. */
export class BreakerOpenError extends TransientError {
  override readonly name = "BreakerOpenError";
}

const transient = (err: Error) => err instanceof TaskCancelledError || (isRetriable(err) && !(err instanceof BrokenCircuitError));

export function createGatewayPolicy(options: GatewayPolicyOptions) {
  const breaker = circuitBreaker(handleWhen(transient), {
    halfOpenAfter: options.breakerHalfOpenAfterMs,
    breaker: new CountBreaker({ threshold: options.breakerFailureRatio ?? 0.5, size: options.breakerWindow }),
  });
  const policy = wrap(
    retry(handleWhen(transient), {
      maxAttempts: options.maxAttempts - 1,
      backoff: new ExponentialBackoff({ initialDelay: options.initialDelayMs, maxDelay: options.maxDelayMs }),
    }),
    breaker,
    timeout(options.timeoutMs, TimeoutStrategy.Aggressive),
  );
  return {
    /**
     * Runs `call` under the policies; an open breaker becomes BreakerOpenError. Each attempt's
     * `signal` aborts when that attempt times out (it may still act: the outcome is unknown).
     */
    async execute<T>(call: (attempt: { readonly signal: AbortSignal }) => Promise<T>): Promise<T> {
      try {
        return await policy.execute(({ signal }) => call({ signal }));
      } catch (err) {
        if (err instanceof BrokenCircuitError) throw new BreakerOpenError("payment processor circuit is open; retry later", { cause: err });
        throw err;
      }
    },
    breakerState(): BreakerState {
      return breaker.state === CircuitState.Open || breaker.state === CircuitState.Isolated ? "open" : breaker.state === CircuitState.HalfOpen ? "half-open" : "closed";
    },
    onStateChange(listener: (state: BreakerState) => void) {
      return breaker.onStateChange(() => listener(this.breakerState()));
    },
  };
}

export type GatewayPolicy = ReturnType<typeof createGatewayPolicy>;
