/**
 * `make chaos`: the whole fault-injection suite. Scenario "faults" runs every fault against a
 * single broker behind Toxiproxy with two instances of every service; scenario "cluster" kills a
 * partition leader of the 3-node cluster under load. Writes the report (Markdown + JSON) and exits
 * 1 unless every scenario passed.
 */
import { join } from "node:path";
import { Command } from "commander";
import { allFaults, leaderKill, killServices } from "./faults.ts";
import { writeReport } from "./report.ts";
import { runScenario, type ScenarioReport } from "./suite.ts";

const program = new Command("chaos")
  .option("--seed <n>", "seed of every random choice", "42")
  .option("--orders <n>", "orders in the main scenario (the cluster scenario adds a tenth)", "20000")
  // 20/s is what two cores sustain with two instances of everything behind Toxiproxy while faults
  // heal; faster, the backlog a fault leaves outlasts the recovery bound.
  .option("--rate <n>", "orders per second", "20")
  .option("--out <dir>", "where the report goes", "docs/reports")
  .parse();

const options = program.opts<{ seed: string; orders: string; rate: string; out: string }>();
const seed = Number(options.seed);
const orders = Number(options.orders);
const rate = Number(options.rate);
const state = join(process.cwd(), ".run", "chaos");
const progress = (line: string) => process.stdout.write(`${line}\n`);

const scenarios: ScenarioReport[] = [];
scenarios.push(
  await runScenario({
    name: "faults",
    seed,
    orders,
    ratePerSecond: rate,
    instances: 2,
    topology: "single",
    proxied: true,
    faults: allFaults.filter((fault) => fault !== leaderKill),
    stateDir: state,
    progress,
  }),
);
scenarios.push(
  await runScenario({
    name: "cluster",
    seed: seed + 1,
    orders: Math.ceil(orders / 10),
    ratePerSecond: rate,
    instances: 1,
    topology: "cluster",
    proxied: false,
    faults: [leaderKill, killServices],
    stateDir: state,
    progress,
  }),
);
const written = writeReport(options.out, scenarios);
const ok = scenarios.every((s) => s.verdict.ok);
progress(`${ok ? "PASS" : "FAIL"}: report in ${written.markdown} and ${written.json}`);
process.exit(ok ? 0 : 1);
