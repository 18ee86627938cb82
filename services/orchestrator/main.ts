/** Entry of the orchestrator service: drives every order's saga. */
import { runService } from "../../lib/service.ts";
import { buildOrchestrator } from "./service.ts";

runService("orchestrator", buildOrchestrator(process.env));
