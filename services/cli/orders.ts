/** `orderflow orders rebuild` — drop the order read model and rebuild it from the log. */
import { Command } from "commander";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { OrderProjection } from "../order/projection.ts";
import { rebuildProjection } from "../order/rebuild.ts";
import { output, type ContextFactory } from "./context.ts";

export function ordersCommand(context: ContextFactory): Command {
  const orders = new Command("orders").description("the order read model");
  orders
    .command("rebuild")
    .description("drop the order read model and replay it from the log (the live projection keeps running)")
    .action(async () => {
      const ctx = context();
      const redis = createRedis(ctx.config, ctx.log);
      const admin = ctx.kafka.admin();
      await admin.connect();
      try {
        const result = await rebuildProjection({ admin, config: ctx.config, projection: new OrderProjection(redis, keyspace(ctx.config.redisKeyPrefix)) });
        output(ctx, result, [`rebuilt ${result.orders} order(s) from ${result.eventsApplied} event(s)`]);
      } finally {
        await admin.disconnect();
        redis.disconnect();
      }
    });
  return orders;
}
