/** Writes the fault suite's report: the JSON as measured, and a Markdown summary for people. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ScenarioReport } from "./suite.ts";

/** The hostile-input section: poison records per topic, hostile requests by status class. */
function hostileInputLines(s: ScenarioReport): string[] {
  const { poison, requests } = s.hostileInput;
  const topics = Object.entries(poison.perTopic);
  return [
    `Hostile input: poison records sent ${poison.sent}, missing from their DLQ ${poison.missingFromDlq.length}${poison.missingFromDlq.length > 0 ? ` (${poison.missingFromDlq.slice(0, 3).join(", ")}…)` : ""}, good records dead-lettered ${poison.goodRecordsDeadLettered}; hostile requests sent ${requests.sent}: 2xx ${requests.byClass["2xx"]}, 3xx ${requests.byClass["3xx"]}, 4xx ${requests.byClass["4xx"]}, 5xx ${requests.byClass["5xx"]}, without an answer ${requests.transportErrors} (orders they placed ${requests.ordersPlaced}, cancels accepted ${requests.cancelsAccepted}, not sendable by the client ${requests.notSent}).`,
    ``,
    ...(topics.length === 0 ? [] : [`| consumed topic | poison sent | missing from DLQ |`, `|---|---|---|`, ...topics.map(([topic, c]) => `| ${topic} | ${c.sent} | ${c.missingFromDlq} |`), ``]),
    ...(requests.sent === 0 ? [] : [`Hostile request answers by status: ${Object.entries(requests.byStatus).sort(([a], [b]) => a.localeCompare(b)).map(([status, n]) => `${status} × ${n}`).join(", ")}.`, ``]),
    ...(requests.failures.length === 0 ? [] : [`Hostile requests that failed (first ${requests.failures.length}):`, ``, ...requests.failures.map((f) => `- ${f.replaceAll("|", "\\|")}`), ``]),
  ];
}

const seconds = (ms: number | undefined) => (ms === undefined ? "did not recover" : `${(ms / 1000).toFixed(1)} s`);

/** The Markdown summary of a run of one or more scenarios. */
export function renderMarkdown(scenarios: readonly ScenarioReport[]): string {
  const ok = scenarios.every((s) => s.verdict.ok);
  const lines = [`# Fault-injection report`, ``, `Verdict: **${ok ? "PASS" : "FAIL"}** — ${scenarios.reduce((n, s) => n + s.load.accepted, 0)} orders accepted over ${scenarios.length} scenario(s).`, ``];
  const [first] = scenarios;
  if (first !== undefined) lines.push(`Versions: ${Object.entries(first.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`, ``);
  for (const s of scenarios) {
    const { invariants: inv } = s;
    lines.push(
      `## ${s.name} — ${s.verdict.ok ? "PASS" : "FAIL"}`,
      ``,
      `Seed ${s.seed}; ${s.config.topology} broker${s.config.proxied ? " behind Toxiproxy" : ""}; ${s.config.instances} instance(s) of every service; ${s.config.ratePerSecond} orders/s; ${(s.durationMs / 1000).toFixed(0)} s. Service settings: ${Object.entries(s.config.serviceSettings).map(([k, v]) => `${k}=${v}`).join(", ")}; the rest at their defaults.${Object.keys(s.config.serviceEnv).length === 0 ? "" : ` Besides, by service: ${Object.entries(s.config.serviceEnv).map(([service, env]) => `${service} ${Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`).join(" ")}`).join("; ")}.`}`,
      ``,
      `| fault | what | recovery |`,
      `|---|---|---|`,
      ...s.faults.map((f) => `| ${f.name} | ${f.description} | ${seconds(f.recoveryMs)} |`),
      ``,
      `Orders accepted ${inv.accepted} (client retries ${s.load.retried}, given up ${s.load.abandoned}, cancel requests ${s.load.cancelRequests}, answered 202 ${s.load.cancelsAccepted}): completed ${inv.outcomes.completed}, failed ${inv.outcomes.failed}, cancelled ${inv.outcomes.cancelled}, refunded after completion ${inv.outcomes.refundedAfterCompletion}.`,
      `Charges ${inv.charges} and refunds ${inv.refunds} in the processor's books; emails delivered ${inv.emails} (the same message resent after a crash: ${inv.resends}).`,
      ``,
      ...hostileInputLines(s),
      `| invariant | violations |`,
      `|---|---|`,
      ...Object.entries(inv.violations).map(([rule, ids]) => `| ${rule} | ${ids.length}${ids.length > 0 ? ` (${ids.slice(0, 3).join(", ")}…)` : ""} |`),
      ``,
      ...(s.verdict.ok ? [] : [`Why it failed: ${s.verdict.reasons.join("; ")}.`, ``]),
      `<details><summary>Timeline</summary>`,
      ``,
      ...s.timeline.map((t) => `- +${(t.atMs / 1000).toFixed(1)} s ${t.event}${t.detail === undefined ? "" : ` \`${JSON.stringify(t.detail)}\``}`),
      ``,
      `</details>`,
      ``,
    );
  }
  return lines.join("\n");
}

/** Writes `<dir>/chaos.json` and `<dir>/chaos.md`; returns their paths. */
export function writeReport(dir: string, scenarios: readonly ScenarioReport[]): { json: string; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, "chaos.json");
  const markdown = join(dir, "chaos.md");
  writeFileSync(json, `${JSON.stringify({ ok: scenarios.every((s) => s.verdict.ok), scenarios }, null, 2)}\n`);
  writeFileSync(markdown, `${renderMarkdown(scenarios)}\n`);
  return { json, markdown };
}
