/** Entry of the notification service: emails over SMTP (SMTP_URL, the local sink by default). */
import { runService } from "../../lib/service.ts";
import { buildNotification } from "./service.ts";

runService("notification", buildNotification(process.env));
