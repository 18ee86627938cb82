import { brokerKill } from "./faults.ts";
import { runScenario } from "./suite.ts";
const report = await runScenario({ name: "try", seed: 1, orders: 300, ratePerSecond: 20, instances: 1, topology: "single", proxied: false, faults: [brokerKill], stateDir: "/work/main/.run/chaos", progress: (l) => console.log(l) });
console.log(JSON.stringify(report.verdict), JSON.stringify(report.faults));
process.exit(0);
