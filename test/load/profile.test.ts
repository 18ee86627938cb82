import { describe, expect, it } from "vitest";
import { partOf, summarizeProfile } from "./profile.ts";

const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 9 }, children });

describe("summarizeProfile", () => {
  // root → handler (our code) → fromBinary (protobuf) ; handler → produce (native, no url) ; GC ; idle
  const profile = {
    nodes: [
      frame(1, "(root)", "", [2, 5, 6]),
      frame(2, "handle", "file:///repo/services/orchestrator/handlers.ts", [3, 4]),
      frame(3, "fromBinary", "file:///repo/node_modules/@bufbuild/protobuf/dist/esm/from-binary.js"),
      frame(4, "produce", ""),
      frame(5, "(garbage collector)", ""),
      frame(6, "(idle)", ""),
    ],
    samples: [2, 3, 3, 4, 5, 6, 6, 6],
    timeDeltas: [100_000, 200_000, 200_000, 300_000, 200_000, 5e6, 5e6, 5e6],
  };

  it("splits busy time by part, gives native calls to their caller and leaves idle out", () => {
    const summary = summarizeProfile(profile);
    expect(summary.busySeconds).toBe(1);
    expect(summary.parts).toEqual({ "protobuf encode/decode": 40, "orderflow code": 40, "garbage collection": 20 });
  });

  it("ranks functions by their own time, naming where they are", () => {
    const [first, second] = summarizeProfile(profile, 2).topFunctions;
    expect(first).toEqual({ name: "fromBinary (@bufbuild/protobuf/dist/esm/from-binary.js:10)", share: 40 });
    expect(second).toEqual({ name: "produce", share: 30 });
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
