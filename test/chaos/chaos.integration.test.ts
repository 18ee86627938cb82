/**
 * The fault suite's slice inside `make test`: a steady order load against the whole system (real
 * processes, their own broker and Redis), while every service is SIGKILLed at a random moment and
 * restarted, the broker is SIGKILLed and restarted, Redis is killed and restarted and its script
 * cache flushed, Redis is stalled (SIGSTOP) past the command timeout, poison records land on every
 * consumed topic and crafted orders of 100 out-of-stock or unknown lines arrive. Then the invariant
 * checker must find nothing: no lost order, no second outcome, charge or email, stock conserved,
 * no oversell, every accepted cancel in effect, every poison record in its DLQ. `make chaos` runs
 * every fault, with two instances of each service.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokerKill, killServices, oversizedOrder, poisonRecords, redisRestart, redisStall } from "./faults.ts";
import { runScenario } from "./suite.ts";

describe("fault injection (CI slice)", () => {
  it("loses, duplicates and oversells nothing while services, the broker and Redis are killed, Redis stalls, and poison and crafted orders arrive", async () => {
    const report = await runScenario({
      name: "ci-slice",
      seed: Number(process.env["CHAOS_SEED"] ?? 7),
      orders: 2000,
      ratePerSecond: 20,
      instances: 1,
      topology: "single",
      proxied: false,
      faults: [killServices, redisRestart, redisStall, poisonRecords, oversizedOrder, brokerKill],
      stateDir: join(process.cwd(), ".run", "chaos-slice"),
      ...(process.env["TEST_LOG_LEVEL"] === undefined ? {} : { progress: (line: string) => process.stdout.write(`${line}\n`) }),
    });
    expect(report.verdict.reasons).toEqual([]);
    expect(report.invariants.accepted).toBeGreaterThanOrEqual(2000);
    expect(report.poison.sent).toBeGreaterThan(0);
    expect(report.faults.map((f) => f.name)).toEqual(["service-sigkill", "redis-restart", "redis-sigstop", "poison", "oversized-order", "broker-sigkill"]);
  }, 900_000);
});
