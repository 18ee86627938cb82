/** Entry of the order service: the public API on HTTP_PORT (8080) and the order read model. */
import { runService } from "../../lib/service.ts";
import { buildOrder } from "./service.ts";

runService("order", buildOrder(process.env));
