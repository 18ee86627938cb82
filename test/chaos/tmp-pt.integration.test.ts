import { join } from "node:path";
import { expect, it } from "vitest";
import { produceTimeout } from "./faults.ts";
import { runScenario } from "./suite.ts";
it("pt", async () => {
  const report = await runScenario({ name: "pt", seed: 7, orders: 600, ratePerSecond: 20, instances: 1, topology: "single", proxied: false, faults: [produceTimeout], stateDir: join(process.cwd(), ".run", "chaos-pt"), progress: (l: string) => process.stdout.write(`${l}\n`) });
  expect(report.verdict.reasons).toEqual([]);
}, 900_000);
