import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../lib/config.ts";
import { breakerOf, DEFAULT_SERVICES, parseServices, probe, statusOf } from "./health.ts";

describe("services list", () => {
  it("parses the default list into loopback readiness URLs", () => {
    const services = parseServices(DEFAULT_SERVICES);
    expect(services.map((s) => s.name)).toEqual(["order", "payment", "inventory", "notification", "orchestrator"]);
    expect(services[1]).toEqual({ name: "payment", readyUrl: "http://127.0.0.1:9102/health/ready" });
  });

  it("takes host:port, spaces and a trailing comma", () => {
    expect(parseServices(" order=ops.local:9101 , payment=9102,")).toEqual([
      { name: "order", readyUrl: "http://ops.local:9101/health/ready" },
      { name: "payment", readyUrl: "http://127.0.0.1:9102/health/ready" },
    ]);
    expect(parseServices("")).toEqual([]);
  });

  it.each(["order", "order=", "order=abc", "order=70000", "=9101", "order=9101/x", "order=http://x:1"])("refuses %j", (raw) => {
    expect(() => parseServices(raw)).toThrow(ConfigError);
  });

  it("refuses a name given twice", () => {
    expect(() => parseServices("order=1,order=2")).toThrow(/twice/);
  });
});

describe("readiness bodies", () => {
  it("reads the overall status, and anything else as error", () => {
    expect(statusOf({ status: "ok", checks: {} })).toBe("ok");
    expect(statusOf({ status: "degraded" })).toBe("degraded");
    expect(statusOf({ status: "fine" })).toBe("error");
    expect(statusOf(undefined)).toBe("error");
  });

  it("reads the breaker state defensively", () => {
    expect(breakerOf({ checks: { gateway: { status: "ok", detail: { breaker: "half-open" } } } })).toBe("half-open");
    expect(breakerOf({ checks: { gateway: { status: "ok", detail: { breaker: "ajar" } } } })).toBe("unknown");
    expect(breakerOf({ checks: { gateway: { status: "ok", detail: "fine" } } })).toBe("unknown");
    expect(breakerOf({ checks: {} })).toBe("unknown");
    expect(breakerOf(null)).toBe("unknown");
  });

  it("probes a readiness URL: a 503 body counts, no listener is down", async () => {
    const server = createServer((_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "error", checks: { gateway: { status: "error", detail: { breaker: "open" } } } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const answered = await probe({ name: "payment", readyUrl: `http://127.0.0.1:${port}/health/ready` }, 1000);
      expect(answered.health).toEqual({ name: "payment", status: "error" });
      expect(breakerOf(answered.body)).toBe("open");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const refused = await probe({ name: "payment", readyUrl: `http://127.0.0.1:${port}/health/ready` }, 1000);
    expect(refused.health.status).toBe("down");
    expect(refused.health.detail).toBeTruthy();
  });
});
