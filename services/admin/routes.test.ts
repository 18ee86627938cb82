/** The admin API's error boundary, as an interceptor. */
import { Code, ConnectError, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { RejectedError, TransientError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { codeOf, errorBoundary } from "./routes.ts";

const log = createLogger("admin-test", "silent");
const setStock = AdminService.method.setStock;

function failing(err: unknown) {
  const next = async () => {
    await Promise.resolve();
    throw err;
  };
  const intercepted = errorBoundary(log)(next);
  return intercepted({ method: setStock } as unknown as UnaryRequest).then(
    (): ConnectError => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e as ConnectError,
  );
}

describe("errorBoundary", () => {
  it("maps rejected rules to FailedPrecondition with their reason", async () => {
    const err = await failing(new RejectedError("available would be -1"));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe("available would be -1");
  });

  it("maps outages to Unavailable and anything else to Internal, without internal detail", async () => {
    const unavailable = await failing(new TransientError("redis at 10.0.0.7 refused"));
    expect(unavailable.code).toBe(Code.Unavailable);
    expect(unavailable.rawMessage).not.toContain("10.0.0.7");
    const internal = await failing(new Error("secret stack detail"));
    expect(internal.code).toBe(Code.Internal);
    expect(internal.rawMessage).toBe("internal error");
    expect(internal.cause).toBeInstanceOf(Error);
    expect(codeOf("a string")).toBe(Code.Internal);
  });

  it("lets ConnectErrors through unchanged", async () => {
    const original = new ConnectError("no such sku", Code.NotFound);
    expect(await failing(original)).toBe(original);
  });
});
