/**
 * How the orchestrator is put together: the saga consumer, its timer (which stops with the
 * consumers when an operator pauses the service: deadlines and expiries wait too), and the saga
 * outcome metric.
 */
import { createOrchestrator, orchestratorTopics } from "./handlers.ts";
import { createOrchestratorMetrics } from "./observability.ts";
import { loadSettings } from "./settings.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";

/** Builds the orchestrator service on a runtime; `env` holds its own settings. */
export function buildOrchestrator(env: Env) {
  return (runtime: Runtime): ServiceParts => {
    const orchestrator = createOrchestrator({ ...runtime, settings: loadSettings(env), ...createOrchestratorMetrics(runtime.metrics.registry) });
    runtime.consume({ group: "orchestrator", topics: orchestratorTopics, handler: async (record, context) => void (await orchestrator.handle(record, context)) });
    let stopTimer: () => Promise<void> = () => Promise.resolve();
    return {
      start: () => {
        stopTimer = orchestrator.startTimer();
        return Promise.resolve();
      },
      stop: () => stopTimer(),
      setPaused: (paused) => orchestrator.setPaused(paused),
    };
  };
}
