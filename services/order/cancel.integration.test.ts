/**
 * A cancel right after the 202, over real Kafka and Redis: the owner's cancel finds the order by
 * the PENDING view written at acceptance, also when the first write of that view failed (a Redis
 * command timing out), so an accepted order is never answered 404 to its own client meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { PlaceOrderRequestSchema } from "../../gen/orderflow/v1/order_service_pb.ts";
import { create } from "@bufbuild/protobuf";
import { loadConfig } from "../../lib/config.ts";
import { TransientError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/log.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { SimulatedGateway } from "../payment/simulated-gateway.ts";
import { createOrders } from "./orders.ts";
import { OrderProjection, type ProjectedEvent } from "./projection.ts";

/** The real projection, whose next `failures` writes fail as a Redis command that timed out would. */
class FlakyProjection extends OrderProjection {
  failures = 0;
  override async apply(topic: string, event: ProjectedEvent): Promise<boolean> {
    if (this.failures > 0) {
      this.failures -= 1;
      throw new TransientError("Command timed out");
    }
    return super.apply(topic, event);
  }
}

let t: TestKafka;
let r: TestRedis;
let publisher: Publisher;

beforeAll(async () => {
  t = await openTestKafka("order-cancel-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher?.disconnect();
  await r?.close();
  await t?.close();
});

describe("cancel right after acceptance", () => {
  it("finds the order although the first write of its PENDING view failed, and asks the saga to cancel it", async () => {
    const projection = new FlakyProjection(r.redis, r.keys);
    const config = loadConfig("order", serviceEnv(t, r.prefix));
    const orders = createOrders({ config, redis: r.redis, keys: r.keys, publisher, projection, tokenizer: new SimulatedGateway(), log: createLogger("order", "silent") });
    const watch = await watchTopics(t, ["orders.cancel.requested"]);
    try {
      projection.failures = 1;
      const { orderId } = await orders.placeOrder(create(PlaceOrderRequestSchema, {
        customerId: "c-1",
        customerEmail: "ada@example.com",
        currency: "USD",
        items: [{ productId: "mouse", quantity: 1, price: "25.00" }],
        payment: { method: "card", cardNumber: "4242424242424242" },
      }));
      expect(projection.failures).toBe(0);
      const order = await orders.cancelOrder(orderId, "changed my mind", "customer");
      expect(order).toMatchObject({ orderId, status: OrderStatus.PENDING, customerId: "c-1" });
      const requested = await watch.next(orderId, "orders.cancel.requested");
      expect(requested.message).toMatchObject({ orderId, reason: "changed my mind", requestedBy: "customer" });
    } finally {
      await watch.close();
    }
  });
});
