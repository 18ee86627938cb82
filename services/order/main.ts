/** Entry of the order service: the public API on HTTP_PORT (8080) and the order read model. */
import { integer } from "../../lib/config.ts";
import { runService } from "../../lib/service.ts";
import { SimulatedGateway } from "../payment/simulated-gateway.ts";
import { startApiServer, type ApiServer } from "./http.ts";
import { createOrders } from "./orders.ts";
import { OrderProjection, projectionTopics } from "./projection.ts";

runService("order", (runtime) => {
  const projection = new OrderProjection(runtime.redis, runtime.keys);
  runtime.consume({ group: "order-projection", topics: projectionTopics, handler: async (record, context) => {
    await projection.apply(context.topic.slice(runtime.config.topicPrefix.length), record);
  } });
  const orders = createOrders({ ...runtime, projection, tokenizer: new SimulatedGateway() });
  let api: ApiServer | undefined;
  return {
    start: async () => {
      api = await startApiServer(orders, runtime.log, integer(process.env, "HTTP_PORT", 8080, 0), process.env["HTTP_HOST"] ?? "127.0.0.1");
      runtime.log.info({ port: api.port }, "order API listening");
    },
    stop: async () => {
      await api?.close();
    },
  };
});
