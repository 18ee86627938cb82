/** Entry of the admin service: AdminService and the dashboard on ADMIN_PORT (8081), guarded by ADMIN_TOKEN. */
import { runService } from "../../lib/service.ts";
import { buildAdmin } from "./service.ts";

runService("admin", buildAdmin(process.env));
