/**
 * The admin process died of SIGSEGV on its first start against a freshly formatted broker: the
 * dashboard's first round asked for committed offsets while the group coordinators were still
 * loading, and librdkafka handles the NOT_COORDINATOR answer to that request in a way that needs a
 * consumer-group handle a plain admin client does not have (broker.ts: openRoundAdmin). This test
 * formats a broker of its own (single node, ports KAFKA_PORT_OFFSET + 50, state under
 * .run/test-fresh-broker), runs the dashboard's lag reads in a child process at once, and requires
 * that the process saw those refusals, got answers after them, and exited on its own.
 * Runs when the tests start the local broker themselves (not against an external one).
 */
import { execFileSync, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const freshBroker = {
  ...process.env,
  ORDERFLOW_STATE: join(root, ".run", "test-fresh-broker"),
  KAFKA_PORT_OFFSET: String(Number(process.env["KAFKA_PORT_OFFSET"] ?? "0") + 50),
};
const kafkaSh = (...args: string[]) =>
  execFileSync("bash", [join(root, "infra", "kafka", "kafka.sh"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], env: freshBroker });

/** Runs the fixture to its end: exit code, signal and its stdout. */
function runRounds(brokers: string, forMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "test", "fixtures", "dashboard-rounds.ts"), String(forMs)], {
    cwd: root,
    env: { ...process.env, KAFKA_BROKERS: brokers, LOG_LEVEL: "error" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, stdout })));
}

describe.runIf(inject("localKafka"))("the dashboard's broker reads against a freshly formatted broker", () => {
  let brokers: string;

  beforeAll(() => {
    kafkaSh("wipe", "single");
    kafkaSh("start", "single");
    brokers = kafkaSh("bootstrap", "single").trim();
  });

  afterAll(() => {
    kafkaSh("wipe", "single");
  });

  it("are refused while the group coordinators load, then answered, and the process lives on", async () => {
    const { code, signal, stdout } = await runRounds(brokers, 60_000);
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const result = JSON.parse(stdout.trim()) as { rounds: number; coordinatorRefusals: number; answeredAfterRefusal: boolean };
    // The answer that used to kill the process did come, and the reads recovered after it.
    expect(result.coordinatorRefusals).toBeGreaterThan(0);
    expect(result.answeredAfterRefusal).toBe(true);
  });
});
