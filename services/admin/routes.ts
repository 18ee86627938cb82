/**
 * The Connect implementation of `orderflow.v1.AdminService` over the admin core, and the
 * interceptors every call passes, outermost first: tracing, the error boundary (anything that is
 * not a ConnectError becomes a Code without internal detail, and is logged), and request
 * validation with the proto's buf.validate rules (InvalidArgument naming each field). The bearer
 * token is checked before them, at the HTTP level, before the body is read (server.ts).
 */
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { AdminService } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { RejectedError, TransientError, messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { traceRequest } from "../../lib/tracing.ts";
import { validateRequests } from "../order/validation.ts";
import type { AdminCore } from "./admin.ts";

/** The routes of AdminService. */
export function adminRoutes(admin: AdminCore) {
  return (router: ConnectRouter) =>
    router.service(AdminService, {
      async getOrderDetail(request) {
        return admin.getOrderDetail(request.orderId);
      },
      async listDeadLetters(request) {
        return { deadLetters: await admin.listDeadLetters(request.topic, request.limit) };
      },
      async replayDeadLetters(request) {
        return admin.replayDeadLetters(request);
      },
      async listParkedCompensations() {
        return { compensations: await admin.listParkedCompensations() };
      },
      async resolveParkedCompensation(request) {
        return { compensation: await admin.resolveParkedCompensation(request) };
      },
      async getStock(request) {
        return { levels: await admin.getStock(request.sku) };
      },
      async setStock(request) {
        return { level: await admin.setStock(request) };
      },
      async pauseConsumption(request) {
        return { paused: await admin.setConsumption(request.service, true, request.actor) };
      },
      async resumeConsumption(request) {
        return { paused: await admin.setConsumption(request.service, false, request.actor) };
      },
      async rebuildProjection(request) {
        return admin.rebuildProjection(request.actor);
      },
    });
}

/** The Code an error that is not a ConnectError maps to. */
export function codeOf(err: unknown): Code {
  if (err instanceof RejectedError) return Code.FailedPrecondition;
  if (err instanceof TransientError) return Code.Unavailable;
  return Code.Internal;
}

/**
 * Lets ConnectErrors through; turns anything else into one whose message says no more than its
 * Code allows (a rejected business rule says why; an internal error only that it happened), with
 * the error itself as `cause` and in the log.
 */
export function errorBoundary(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      const code = codeOf(err);
      log[code === Code.Internal ? "error" : "warn"]({ procedure: req.method.name, err: messageOf(err) }, "admin call failed");
      const message = code === Code.FailedPrecondition ? messageOf(err) : code === Code.Unavailable ? "a dependency is unavailable; retry later" : "internal error";
      throw new ConnectError(message, code, undefined, undefined, err);
    }
  };
}

/**
 * Each call is a SERVER span continuing the caller's trace context, so the audit records an admin
 * action writes carry its trace id, and what it replays links back to it.
 */
export const traceCalls: Interceptor = (next) => (req) =>
  traceRequest(`${req.service.typeName}/${req.method.name}`, "server", Object.fromEntries(req.header.entries()), { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name }, () => next(req));

/** The interceptors of the admin API, in order. */
export function adminInterceptors(log: Logger): Interceptor[] {
  return [traceCalls, errorBoundary(log), validateRequests];
}
