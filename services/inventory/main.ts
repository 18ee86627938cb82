/** Entry of the inventory service: stock reservations in Redis, driven by the saga. */
import { runService } from "../../lib/service.ts";
import { buildInventory } from "./service.ts";

runService("inventory", buildInventory(process.env));
