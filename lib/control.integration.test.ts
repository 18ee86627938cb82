/**
 * Operator pause over the real Redis and broker: the watch sees the flag at start and every change
 * at once, readiness says degraded while paused, and a service started while paused consumes
 * nothing until resumed (partitions assigned during the pause are paused too).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrderCreatedSchema, type OrderCreated } from "../gen/orderflow/v1/events_pb.ts";
import { createLogger } from "./log.ts";
import { keyspace } from "./redis.ts";
import { createPublisher, type Publisher } from "./kafka/publisher.ts";
import { isConsumptionPaused, pauseCheck, setConsumptionPaused, watchPauses } from "./control.ts";
import { startService } from "./service.ts";
import { openTestKafka, type TestKafka } from "../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../test/harness/redis.ts";
import { sampleOf } from "../test/harness/samples.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../test/harness/system.ts";
import { waitFor } from "../test/harness/wait.ts";

let t: TestKafka;
let r: TestRedis;
let publisher: Publisher;
const log = createLogger("control-test", "silent");

beforeAll(async () => {
  t = await openTestKafka("control-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  publisher = await createPublisher(t.kafka, t.config);
});

afterAll(async () => {
  await publisher?.disconnect();
  await r?.close();
  await t?.close();
});

describe("watchPauses", () => {
  it("reports the flag set before it started, then each change, and nothing after close", async () => {
    const config = { redisUrl: t.config.redisUrl, redisKeyPrefix: r.prefix };
    await setConsumptionPaused(r.redis, r.keys, "payment", true);
    const seen: boolean[] = [];
    const watch = await watchPauses({ config, redis: r.redis, log }, "payment", (paused) => seen.push(paused));
    expect(seen).toEqual([true]);
    expect(watch.paused).toBe(true);
    expect((await pauseCheck(watch).check()).status).toBe("degraded");

    await setConsumptionPaused(r.redis, r.keys, "inventory", true);
    await setConsumptionPaused(r.redis, r.keys, "payment", false);
    await waitFor(() => seen.length === 2, { what: "the resume notice" });
    expect(seen).toEqual([true, false]);
    expect((await pauseCheck(watch).check()).status).toBe("ok");
    expect(await isConsumptionPaused(r.redis, r.keys, "inventory")).toBe(true);

    // After close, a change is not reported: a second watch (the control) sees it, the closed one not.
    const control: boolean[] = [];
    const other = await watchPauses({ config, redis: r.redis, log }, "payment", (paused) => control.push(paused));
    await watch.close();
    await setConsumptionPaused(r.redis, r.keys, "payment", true);
    await waitFor(() => control.includes(true), { what: "the control watch to see the pause" });
    await other.close();
    expect(watch.paused).toBe(false);
    expect(seen).toEqual([true, false]);
  });
});

describe("a service started while paused", () => {
  it("consumes nothing and runs no timer until resumed, and its readiness says why", async () => {
    const prefix = `ctl-${randomUUID().slice(0, 6)}`;
    const env = serviceEnv(t, prefix);
    const handled: string[] = [];
    const timerPauses: boolean[] = [];
    const keys = keyspace(prefix);
    await setConsumptionPaused(r.redis, keys, "projector", true);
    const service = await startService("projector", (runtime) => {
      runtime.consume({
        group: "projector",
        topics: ["orders.created"],
        delivery: "at-least-once",
        handler: (record) => {
          handled.push((record.message as unknown as OrderCreated).orderId);
          return Promise.resolve();
        },
      });
      // Its timers hear of the pause too (the orchestrator's saga timer stops on it).
      return { setPaused: (paused) => void timerPauses.push(paused) };
    }, env);
    const control = await watchTopics(t, ["orders.created"]);
    try {
      const ready = async () => (await (await fetch(`http://127.0.0.1:${service.ops.port}/health/ready`)).json()) as { checks: Record<string, { status: string; detail?: unknown }> };
      expect((await ready()).checks["control"]).toEqual({ status: "degraded", detail: "consumption paused by an operator" });

      const first = randomUUID();
      await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, first), { orderId: first });
      // A consumer that is not paused (the control) reads the record; the paused one must not have.
      await control.next(first, "orders.created");
      const second = randomUUID();
      await publisher.publish("orders.created", OrderCreatedSchema, sampleOf(OrderCreatedSchema, second), { orderId: second });
      await control.next(second, "orders.created");
      expect(handled).toEqual([]);
      expect(timerPauses).toEqual([true]);

      await setConsumptionPaused(r.redis, keys, "projector", false);
      await waitFor(() => handled.includes(first) && handled.includes(second), { what: "both records handled after resume" });
      expect(timerPauses).toEqual([true, false]);
      expect((await ready()).checks["control"]).toEqual({ status: "ok" });
    } finally {
      await control.close();
      await service.stop();
      await r.redis.del(keys("control", "paused"));
    }
  });
});
