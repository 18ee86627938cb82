import { describe, expect, it } from "vitest";
import { partOf, summarizeBrokerSamples, summarizeProfile } from "./profile.ts";

const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 9 }, children });

describe("summarizeProfile", () => {
  // root → handler (our code) → fromBinary (protobuf); handler → produce (native, no url);
  // root → timer (Node) → write (Node) → writeUtf8String (native); GC; idle
  const profile = {
    nodes: [
      frame(1, "(root)", "", [2, 5, 6, 7]),
      frame(2, "handle", "file:///repo/services/orchestrator/handlers.ts", [3, 4]),
      frame(3, "fromBinary", "file:///repo/node_modules/@bufbuild/protobuf/dist/esm/from-binary.js"),
      frame(4, "produce", ""),
      frame(5, "(garbage collector)", ""),
      frame(6, "(idle)", ""),
      frame(7, "listOnTimeout", "node:internal/timers", [8]),
      frame(8, "writeGeneric", "node:internal/stream_base_commons", [9]),
      frame(9, "writeUtf8String", ""),
    ],
    samples: [2, 3, 3, 4, 5, 6, 6, 6, 9],
    timeDeltas: [100_000, 200_000, 200_000, 300_000, 200_000, 5e6, 5e6, 5e6, 250_000],
  };

  it("splits busy time by the part that asked for it, leaving idle out", () => {
    const summary = summarizeProfile(profile);
    expect(summary.busySeconds).toBe(1.25);
    expect(summary.parts).toEqual({
      "protobuf encode/decode": 32,
      "orderflow code": 32,
      "Node runtime (streams, sockets, timers)": 20,
      "garbage collection": 16,
    });
  });

  it("gives a socket write to the library that wrote", () => {
    const viaRedis = {
      nodes: [frame(1, "(root)", "", [2]), frame(2, "write", "file:///repo/node_modules/ioredis/built/Pipeline.js", [3]), frame(3, "writeGeneric", "node:internal/stream_base_commons", [4]), frame(4, "writeUtf8String", "")],
      samples: [4],
      timeDeltas: [1000],
    };
    expect(summarizeProfile(viaRedis).parts).toEqual({ ioredis: 100 });
  });

  it("ranks functions by their own time, naming where they are", () => {
    const [first, second] = summarizeProfile(profile, 2).topFunctions;
    expect(first).toEqual({ name: "fromBinary (@bufbuild/protobuf/dist/esm/from-binary.js:10)", share: 32 });
    expect(second).toEqual({ name: "produce", share: 24 });
  });
});

describe("partOf", () => {
  it("knows the libraries on the hot path and our own code", () => {
    expect(partOf("file:///r/node_modules/@confluentinc/kafka-javascript/lib/kafkajs/_producer.js")).toBe("Kafka client (JS layer and native calls)");
    expect(partOf("file:///r/node_modules/@bufbuild/protovalidate/dist/esm/validator.js")).toBe("protovalidate");
    expect(partOf("file:///r/node_modules/@bufbuild/cel/dist/esm/eval.js")).toBe("protovalidate");
    expect(partOf("file:///r/node_modules/ioredis/built/Redis.js")).toBe("ioredis");
    expect(partOf("node:internal/streams/writable")).toBe("Node runtime (streams, sockets, timers)");
    expect(partOf("file:///r/lib/kafka/consumer-runner.ts")).toBe("orderflow code");
  });
});

describe("summarizeBrokerSamples", () => {
  const sample = (thread: string, ...frames: string[]) => ({
    values: {
      sampledThread: { javaName: thread },
      stackTrace: { frames: frames.map((f) => ({ method: { name: f.split(".")[1] ?? "", type: { name: `kafka/server/${f.split(".")[0] ?? ""}` } } })) },
    },
  });
  const samples = {
    recording: {
      events: [
        sample("data-plane-kafka-request-handler-0", "UnifiedLog.read", "ReplicaManager.fetchMessages", "KafkaApis.handleFetchRequest", "KafkaApis.handle"),
        sample("data-plane-kafka-request-handler-1", "DelayedFetch.tryComplete", "ReplicaManager.tryCompleteActions", "KafkaApis.handle"),
        sample("data-plane-kafka-request-handler-1", "UnifiedLog.append", "KafkaApis.handleProduceRequest", "KafkaApis.handle"),
        sample("TxnMarkerSenderThread", "Selector.poll"),
        sample("data-plane-kafka-network-thread-1-PLAINTEXT", "Selector.poll"),
      ],
    },
  };

  it("sorts sampled work into fetches, appends, transactions and the network, naming the costliest methods", () => {
    const summary = summarizeBrokerSamples(samples, 12.5);
    expect(summary.busySeconds).toBe(12.5);
    expect(summary.parts).toEqual({
      "serving fetches (consumers and their long polls)": 40,
      "appending produced records": 20,
      "transactions (partitions, offsets, end, markers)": 20,
      "network threads (requests in and out)": 20,
    });
    expect(summary.topFunctions[0]).toEqual({ name: "Selector.poll", share: 40 });
  });
});
