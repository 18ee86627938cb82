/**
 * The hostile request generator: the same seed gives the same requests; a sample reaches every
 * route family, transport, token kind and body encoding; every request is one Node's HTTP client
 * will send; and a Connect stream's end-stream error is read back as its HTTP status class.
 */
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { generateRequests, streamStatus } from "./hostile.ts";

const envelope = (flags: number, payload: string) => {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(Buffer.byteLength(payload), 1);
  return Buffer.concat([head, Buffer.from(payload)]);
};

describe("hostile requests", () => {
  const plans = generateRequests(3000, 42);

  it("are the same for the same seed", () => {
    const again = generateRequests(50, 42).map((p) => [p.label, p.path, p.auth, p.body?.toString("base64")]);
    expect(generateRequests(50, 42).map((p) => [p.label, p.path, p.auth, p.body?.toString("base64")])).toEqual(again);
    expect(generateRequests(50, 43).map((p) => [p.label, p.path, p.auth, p.body?.toString("base64")])).not.toEqual(again);
  });

  it("reach every route family, token kind and body encoding", () => {
    for (const family of ["POST /orders (", "GET /orders", "GET /orders/{id}", "POST /orders/{id}/cancel", "GET /products/{sku}", "Connect PlaceOrder", "Connect ListOrders", "Connect CancelOrder", "Connect GET", "Connect WatchOrder", "DELETE "]) {
      expect(plans.some((p) => p.label.startsWith(family)), family).toBe(true);
    }
    expect(new Set(plans.map((p) => p.auth)).size).toBe(14);
    for (const encoding of ["utf8", "utf16", "latin1", "broken-utf8", "gzip", "bomb", "oversized", "random"]) expect(plans.some((p) => p.label.includes(`, ${encoding})`) || p.label.includes(`(${encoding})`))).toBe(true);
    expect(plans.some((p) => (p.body?.length ?? 0) > 64 * 1024)).toBe(true);
    expect(plans.some((p) => p.effect === "rest-place")).toBe(true);
  });

  it("are all requests Node's HTTP client will write", () => {
    for (const plan of plans) {
      const headers: Record<string, string[]> = {};
      for (const [name, value] of plan.headers) (headers[name] ??= []).push(value);
      const req = request("http://127.0.0.1:9/", { method: plan.method, headers, agent: false });
      req.on("error", () => undefined);
      req.destroy();
    }
  });

  it("read a Connect stream's end as its HTTP status", () => {
    expect(streamStatus(Buffer.concat([envelope(0, '{"order":{}}'), envelope(2, "{}")]))).toBe(200);
    expect(streamStatus(envelope(2, '{"error":{"code":"not_found","message":"x"}}'))).toBe(404);
    expect(streamStatus(envelope(2, '{"error":{"code":"internal","message":"x"}}'))).toBe(500);
    expect(streamStatus(envelope(0, '{"order":{}}'))).toBe(200);
  });
});
