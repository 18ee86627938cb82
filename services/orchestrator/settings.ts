/** The orchestrator's own settings, read once at start beside the common config. */
import { integer, type Env } from "../../lib/config.ts";

export interface OrchestratorSettings {
  /** How long payment and reservation may take together before the order fails with TIMEOUT. */
  readonly stepTimeoutMs: number;
  /** Largest order total accepted, in minor units. */
  readonly maxOrderMinor: bigint;
  readonly compensationRetryMs: number;
  readonly compensationMaxAttempts: number;
  /** How often the timer looks for due sagas and unflushed outboxes. */
  readonly tickMs: number;
  /** Sagas kept in memory at most (recent.ts). */
  readonly sagaCacheEntries: number;
  /** How often the catalog version is checked: the bound on a price change reaching validation (catalog.ts). */
  readonly catalogCheckMs: number;
  /** Longest a catalog price is used without reading it again (writers that do not bump the version). */
  readonly catalogMaxAgeMs: number;
}

export function loadSettings(env: Env): OrchestratorSettings {
  return {
    stepTimeoutMs: integer(env, "SAGA_STEP_TIMEOUT_MS", 30_000, 1),
    maxOrderMinor: BigInt(integer(env, "SAGA_MAX_ORDER_MINOR", 10_000_000, 1)),
    compensationRetryMs: integer(env, "SAGA_COMPENSATION_RETRY_MS", 5_000, 1),
    compensationMaxAttempts: integer(env, "SAGA_COMPENSATION_MAX_ATTEMPTS", 5, 1),
    tickMs: integer(env, "SAGA_TICK_MS", 250, 10),
    sagaCacheEntries: integer(env, "SAGA_CACHE_ENTRIES", 10_000, 1),
    catalogCheckMs: integer(env, "SAGA_CATALOG_CHECK_MS", 250, 10),
    catalogMaxAgeMs: integer(env, "SAGA_CATALOG_MAX_AGE_MS", 30_000, 1),
  };
}
