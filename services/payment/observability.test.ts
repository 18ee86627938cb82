import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../test/harness/wait.ts";
import { GatewayUnavailableError } from "./gateway.ts";
import { gatewayCheck, observeBreaker } from "./observability.ts";
import { createGatewayPolicy } from "./resilience.ts";

const value = async (registry: Registry, name: string, labels: Record<string, string>) => {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
};

describe("payment breaker observability", () => {
  it("shows the breaker's state as gauge and readiness, and counts its transitions", async () => {
    const policy = createGatewayPolicy({ maxAttempts: 1, initialDelayMs: 1, maxDelayMs: 1, timeoutMs: 100, breakerWindow: 2, breakerHalfOpenAfterMs: 50 });
    const registry = new Registry();
    observeBreaker(policy, registry);
    const check = gatewayCheck(policy);
    expect(check.name).toBe("gateway");
    expect(await value(registry, "orderflow_circuit_breaker_state", { breaker: "gateway" })).toBe(0);
    expect(await check.check()).toEqual({ status: "ok", detail: { breaker: "closed" } });

    for (let i = 0; i < 2; i += 1) await expect(policy.execute(() => Promise.reject(new GatewayUnavailableError("down")))).rejects.toThrow("down");
    expect(await value(registry, "orderflow_circuit_breaker_state", { breaker: "gateway" })).toBe(1);
    expect(await check.check()).toEqual({ status: "degraded", detail: { breaker: "open" } });
    expect(await value(registry, "orderflow_circuit_breaker_transitions_total", { breaker: "gateway", to: "open" })).toBe(1);

    await waitFor(async () => (await policy.execute(() => Promise.resolve("again")).catch(() => undefined)) === "again", { what: "the breaker to close" });
    expect(await check.check()).toEqual({ status: "ok", detail: { breaker: "closed" } });
    expect(await value(registry, "orderflow_circuit_breaker_transitions_total", { breaker: "gateway", to: "half-open" })).toBe(1);
    expect(await value(registry, "orderflow_circuit_breaker_transitions_total", { breaker: "gateway", to: "closed" })).toBe(1);
  });

  it("calls a half-open breaker degraded", async () => {
    const check = gatewayCheck({ breakerState: () => "half-open" });
    expect(await check.check()).toEqual({ status: "degraded", detail: { breaker: "half-open" } });
  });
});
