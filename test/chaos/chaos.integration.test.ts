/**
 * The fault suite's slice inside `make test`: a steady order load against the whole system (real
 * processes, their own broker and Redis), while every service is SIGKILLed at a random moment and
 * restarted, the broker is SIGKILLed and restarted, Redis is killed and restarted and its script
 * cache flushed, Redis is stalled (SIGSTOP) past the command timeout, generated poison records land
 * on every consumed topic, three DLQs refuse writes for a while as more poison arrives, generated
 * hostile requests hit the order API and crafted orders of 100
 * out-of-stock or unknown lines arrive. Then the invariant checker must find nothing: no lost
 * order, no second outcome, charge or email, stock conserved, no oversell, every accepted cancel in
 * effect, every poison record in its DLQ, no hostile request answered 5xx or left unanswered.
 *
 * The negative control runs the pipeline against a deliberately broken build — payment and
 * notification with their dedup switched off — while the payment, inventory and notification
 * groups are replayed from the start (each once it has handled records): the run must FAIL with
 * duplicate charges and duplicate emails, or the suite is blind.
 * `make chaos` runs every fault, with two instances of each service.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokerKill, killServices, oversizedOrder, poisonRecords, redisRestart, redisStall, topicReplay } from "./faults.ts";
import { dlqRefusal } from "./dlq-refusal.ts";
import { hostileRequests } from "./hostile.ts";
import { writeReport } from "./report.ts";
import { runScenario } from "./suite.ts";

const progress = process.env["TEST_LOG_LEVEL"] === undefined ? {} : { progress: (line: string) => process.stdout.write(`${line}\n`) };
const seed = Number(process.env["CHAOS_SEED"] ?? 7);

describe("fault injection (CI slice)", () => {
  it("loses, duplicates and oversells nothing while services, the broker and Redis are killed, Redis stalls, and poison, hostile requests and crafted orders arrive", async () => {
    const report = await runScenario({
      name: "ci-slice",
      seed,
      orders: 2000,
      ratePerSecond: 20,
      instances: 1,
      topology: "single",
      proxied: false,
      faults: [killServices, redisRestart, redisStall, poisonRecords(25), dlqRefusal, hostileRequests(1000), oversizedOrder, brokerKill],
      stateDir: join(process.cwd(), ".run", "chaos-slice"),
      ...progress,
    });
    // The whole report (counts by status, first failures) beside the logs, for a failed run.
    writeReport(join(process.cwd(), ".run", "ci-slice-report"), [report]);
    expect(report.verdict.reasons).toEqual([]);
    expect(report.invariants.accepted).toBeGreaterThanOrEqual(2000);
    const { poison, requests } = report.hostileInput;
    // 25 generated on every consumed topic, and 3 more on each of the topics whose DLQ refused writes.
    expect(Object.values(poison.perTopic).map((t) => t.sent).toSorted()).toEqual([...Array.from({ length: 12 }, () => 25), 28, 28, 28]);
    expect(requests.sent + requests.notSent).toBe(1000);
    expect(requests.byClass["4xx"]).toBeGreaterThan(requests.sent / 2);
    expect(report.faults.map((f) => f.name)).toEqual(["service-sigkill", "redis-restart", "redis-sigstop", "poison", "dlq-refuses-writes", "hostile-requests", "oversized-order", "broker-sigkill"]);
  }, 900_000);

  it("fails (negative control) with duplicate charges and emails when payment and notification run without dedup and their topics are replayed", async () => {
    const brokenBuild = { UNSAFE_DISABLE_DEDUP: "1", ORDERFLOW_TEST_RUN: "1" };
    const report = await runScenario({
      name: "negative-control",
      seed,
      orders: 300,
      ratePerSecond: 20,
      instances: 1,
      topology: "single",
      proxied: false,
      faults: [topicReplay],
      serviceEnv: { payment: brokenBuild, notification: brokenBuild },
      stateDir: join(process.cwd(), ".run", "chaos-negative"),
      ...progress,
    });
    writeReport(join(process.cwd(), ".run", "negative-control-report"), [report]);
    expect(report.config.serviceEnv).toEqual({ payment: brokenBuild, notification: brokenBuild });
    expect(report.verdict.ok).toBe(false);
    expect(report.verdict.reasons).toEqual(expect.arrayContaining([expect.stringMatching(/^duplicateCharges: [1-9]/), expect.stringMatching(/^duplicateEmails: [1-9]/)]));
    expect(report.verdict.reasons.filter((reason) => reason.startsWith("replay:")), "the replay found records to replay").toEqual([]);
  }, 600_000);
});
