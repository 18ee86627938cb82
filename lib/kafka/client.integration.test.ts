/**
 * KAFKA_COMMON_ properties (connection security: security.protocol, sasl.*, ssl.*) reach every
 * Kafka client a process makes — the admin client too, which once connected without them. Shown
 * against the plaintext test broker: told to speak TLS, every client must fail to connect.
 */
import { inject, describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { createKafka } from "./client.ts";
import { connectConsumer, connectProducer, disconnect } from "./native.ts";

const log = createLogger("client-test", "silent");
const tls = loadConfig("client-test", { KAFKA_BROKERS: inject("kafkaBrokers"), KAFKA_COMMON_SECURITY_PROTOCOL: "SSL" });
const plain = loadConfig("client-test", { KAFKA_BROKERS: inject("kafkaBrokers") });

/** Whether the admin client of `config` can list the broker's topics. */
async function adminConnects(config: typeof tls): Promise<boolean> {
  const admin = createKafka(config, log).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

describe("KAFKA_COMMON_ properties", () => {
  it("are given to producers and consumers", () => {
    expect(tls.kafka.common["security.protocol"]).toBe("SSL");
    expect(tls.kafka.producer["security.protocol"]).toBe("SSL");
    expect(tls.kafka.consumer["security.protocol"]).toBe("SSL");
  });

  it("reach the admin client, the producer and the consumer: told to speak TLS to a plaintext broker, none connects", async () => {
    expect(await adminConnects(plain)).toBe(true);
    const [admin, producer, consumer] = await Promise.all([
      adminConnects(tls),
      connectProducer(tls, log).then(async (p) => (await disconnect(p), true), () => false),
      connectConsumer(tls, log, "client-test", { onRebalance: () => undefined }).then(async (c) => (await disconnect(c), true), () => false),
    ]);
    expect({ admin, producer, consumer }).toEqual({ admin: false, producer: false, consumer: false });
  }, 90_000);
});
