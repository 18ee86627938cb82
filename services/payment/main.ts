/** Entry of the payment service: charges and refunds through the gateway, resiliently. */
import { runService } from "../../lib/service.ts";
import { buildPayment } from "./service.ts";

runService("payment", buildPayment(process.env));
