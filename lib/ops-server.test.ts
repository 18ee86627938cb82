import { afterEach, describe, expect, it } from "vitest";
import { Registry, Counter } from "prom-client";
import { readiness, startOpsServer, type OpsServer } from "./ops-server.ts";

let server: OpsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("ops server", () => {
  it("combines checks: the worst wins, a throw or a hang is an error", async () => {
    expect((await readiness([{ name: "a", check: () => ({ status: "ok" }) }])).status).toBe("ok");
    const report = await readiness([
      { name: "a", check: () => ({ status: "ok" }) },
      { name: "b", check: () => ({ status: "degraded", detail: "slow" }) },
    ]);
    expect(report).toEqual({ status: "degraded", checks: { a: { status: "ok" }, b: { status: "degraded", detail: "slow" } } });
    const broken = await readiness([{ name: "c", check: () => Promise.reject(new Error("redis down")) }]);
    expect(broken).toEqual({ status: "error", checks: { c: { status: "error", detail: "redis down" } } });
  });

  it("serves live, ready (503 on error), metrics and 404", async () => {
    const registry = new Registry();
    new Counter({ name: "test_things_total", help: "things", registers: [registry] }).inc(3);
    let healthy = true;
    server = await startOpsServer({ port: 0, registry, checks: [{ name: "dep", check: () => ({ status: healthy ? "ok" : "error" }) }] });
    const base = `http://127.0.0.1:${server.port}`;
    expect(await (await fetch(`${base}/health/live`)).json()).toEqual({ status: "ok" });
    expect((await fetch(`${base}/health/ready`)).status).toBe(200);
    healthy = false;
    const ready = await fetch(`${base}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: "error", checks: { dep: { status: "error" } } });
    expect(await (await fetch(`${base}/metrics`)).text()).toContain("test_things_total 3");
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
