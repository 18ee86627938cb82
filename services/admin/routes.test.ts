/** The admin API's error boundary and request validation, as interceptors. */
import { Code, ConnectError, type UnaryRequest } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AdminService, SetStockRequestSchema } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { RejectedError, TransientError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { violationsOf } from "../order/orders.ts";
import { codeOf, errorBoundary, validateRequests } from "./routes.ts";

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

describe("validateRequests", () => {
  const run = (message: unknown) =>
    validateRequests((() => Promise.resolve("called")) as never)({ stream: false, method: setStock, message } as unknown as UnaryRequest).catch((e: unknown) => e);

  it("passes a valid request and refuses an invalid one naming each field", async () => {
    expect(await run(create(SetStockRequestSchema, { sku: "laptop", available: 3n, actor: "ada" }))).toBe("called");
    const err = await run(create(SetStockRequestSchema, { sku: "../x", available: -1n, actor: "" }));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(violationsOf(err)?.map((v) => v.field).sort()).toEqual(["actor", "available", "sku"]);
  });
});
