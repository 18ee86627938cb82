/** Entry of the orchestrator service: drives every order's saga. */
import { runService } from "../../lib/service.ts";
import { createOrchestrator, orchestratorTopics } from "./handlers.ts";
import { loadSettings } from "./settings.ts";

runService("orchestrator", (runtime) => {
  const orchestrator = createOrchestrator({ ...runtime, settings: loadSettings(process.env) });
  runtime.consume({ group: "orchestrator", topics: orchestratorTopics, handler: (record, context) => orchestrator.handle(record, context.topic) });
  let stopTimer: () => Promise<void> = () => Promise.resolve();
  return {
    start: () => {
      stopTimer = orchestrator.startTimer();
      return Promise.resolve();
    },
    stop: () => stopTimer(),
  };
});
