/** The validation interceptor: unary requests and the messages of request streams, both checked. */
import { create } from "@bufbuild/protobuf";
import { Code, type ConnectError, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService, SetStockRequestSchema } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { OrderService, WatchOrderRequestSchema } from "../../gen/orderflow/v1/order_service_pb.ts";
import { violationsOf } from "./orders.ts";
import { validateRequests } from "./validation.ts";

describe("validateRequests", () => {
  it("passes a valid unary request and refuses an invalid one naming each field", async () => {
    const run = (message: unknown) =>
      validateRequests((() => Promise.resolve("called")) as never)({ stream: false, method: AdminService.method.setStock, message } as unknown as UnaryRequest).catch((e: unknown) => e);
    expect(await run(create(SetStockRequestSchema, { sku: "laptop", available: 3n, actor: "ada" }))).toBe("called");
    const err = await run(create(SetStockRequestSchema, { sku: "../x", available: -1n, actor: "" }));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(violationsOf(err)?.map((v) => v.field).sort()).toEqual(["actor", "available", "sku"]);
  });

  it("checks each message of a request stream before the handler takes it", async () => {
    async function* requests() {
      for (const orderId of ["7b0c3f9e-3c1a-4d55-9a57-4a4c05f0c3b1", "not-a-uuid"]) yield await Promise.resolve(create(WatchOrderRequestSchema, { orderId }));
    }
    const taken: string[] = [];
    const handler = async (req: StreamRequest) => {
      for await (const message of req.message) taken.push((message as unknown as { orderId: string }).orderId);
      return "done";
    };
    const err = await validateRequests(handler as never)({ stream: true, method: OrderService.method.watchOrder, message: requests() } as unknown as StreamRequest).catch((e: unknown) => e);
    expect(taken).toEqual(["7b0c3f9e-3c1a-4d55-9a57-4a4c05f0c3b1"]);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect(violationsOf(err)?.map((v) => v.field)).toEqual(["order_id"]);
  });
});
