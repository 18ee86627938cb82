import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("has working defaults with the guarantee block applied", () => {
    const config = loadConfig("payment", {});
    expect(config.kafka.brokers).toBe("127.0.0.1:9092");
    expect(config.kafka.clientId).toBe("orderflow-payment");
    expect(config.kafka.producer).toMatchObject({ "enable.idempotence": true, acks: "all" });
    expect(config.kafka.consumer).toMatchObject({ "isolation.level": "read_committed" });
    expect(config.encoding).toBe("binary");
    expect(config.topicPrefix).toBe("");
  });

  it("takes environment overrides, including librdkafka properties by prefix", () => {
    const config = loadConfig("order", {
      KAFKA_BROKERS: "a:1,b:2",
      KAFKA_PRODUCER_LINGER_MS: "20",
      KAFKA_CONSUMER_FETCH_WAIT_MAX_MS: "10",
      KAFKA_PRODUCER_COMPRESSION_TYPE: "zstd",
      ORDERFLOW_ENCODING: "json",
      TOPIC_PROFILE: "cluster",
      CONSUMER_MAX_ATTEMPTS: "3",
    });
    expect(config.kafka.brokers).toBe("a:1,b:2");
    expect(config.kafka.producer["linger.ms"]).toBe(20);
    expect(config.kafka.producer["compression.type"]).toBe("zstd");
    expect(config.kafka.consumer["fetch.wait.max.ms"]).toBe(10);
    expect(config.encoding).toBe("json");
    expect(config.topicProfile).toBe("cluster");
    expect(config.consumer.maxAttempts).toBe(3);
  });

  it("refuses to weaken a guarantee", () => {
    expect(() => loadConfig("x", { KAFKA_PRODUCER_ACKS: "1" })).toThrow(ConfigError);
    expect(() => loadConfig("x", { KAFKA_PRODUCER_ENABLE_IDEMPOTENCE: "false" })).toThrow(/enable.idempotence/);
    expect(() => loadConfig("x", { KAFKA_CONSUMER_ISOLATION_LEVEL: "read_uncommitted" })).toThrow(/isolation.level/);
  });

  it("names the variable that is wrong", () => {
    expect(() => loadConfig("x", { CONSUMER_MAX_ATTEMPTS: "zero" })).toThrow(/CONSUMER_MAX_ATTEMPTS/);
    expect(() => loadConfig("x", { CONSUMER_MAX_ATTEMPTS: "0" })).toThrow(/>= 1/);
    expect(() => loadConfig("x", { ORDERFLOW_ENCODING: "avro" })).toThrow(/ORDERFLOW_ENCODING/);
    expect(() => loadConfig("x", { TRACING_SAMPLE_RATIO: "2" })).toThrow(/TRACING_SAMPLE_RATIO/);
  });

  it("exports traces only when an OTLP endpoint is given", () => {
    expect(loadConfig("x", {}).tracing).toEqual({ sampleRatio: 1 });
    expect(loadConfig("x", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", TRACING_SAMPLE_RATIO: "0.25" }).tracing).toEqual({
      endpoint: "http://127.0.0.1:4318",
      sampleRatio: 0.25,
    });
  });
});
