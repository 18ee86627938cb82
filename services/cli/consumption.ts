/**
 * `orderflow consumption pause|resume <service>` — stops or restarts a service's consumption on
 * every instance through the AdminService (audited with the actor's name). While paused, the
 * service's readiness says so; the pause survives restarts until resumed.
 */
import { Command } from "commander";
import { callAdmin } from "./admin-client.ts";
import { output, type ContextFactory } from "./context.ts";
import { defaultActor } from "./dlq.ts";

export function consumptionCommand(context: ContextFactory): Command {
  const consumption = new Command("consumption").description("pause or resume a service's consumption, through the admin service");
  for (const action of ["pause", "resume"] as const) {
    consumption
      .command(`${action} <service>`)
      .description(`${action} consumption of order, payment, inventory, notification or orchestrator (every instance)`)
      .option("--actor <name>", "who does it, recorded on orders.audit (default: the OS user)")
      .action(async (service: string, options: { actor?: string }) => {
        const ctx = context();
        const actor = options.actor ?? defaultActor();
        const { paused } = await callAdmin(ctx.settings, async (client): Promise<{ paused: boolean }> =>
          action === "pause" ? client.pauseConsumption({ service, actor }) : client.resumeConsumption({ service, actor }),
        );
        output(ctx, { service, paused }, [`${service}: consumption ${paused ? "paused" : "running"}`]);
      });
  }
  return consumption;
}
