import { KafkaJS } from "@confluentinc/kafka-javascript";
import { describe, expect, it } from "vitest";
import { classifyKafkaError } from "./transactions.ts";

describe("classifyKafkaError", () => {
  it("reads the client's flags, fatal first", () => {
    expect(classifyKafkaError(new KafkaJS.KafkaJSError("f", { fatal: true, abortable: true }))).toBe("fatal");
    expect(classifyKafkaError(new KafkaJS.KafkaJSError("a", { abortable: true, retriable: true }))).toBe("abortable");
    expect(classifyKafkaError(new KafkaJS.KafkaJSError("r", { retriable: true }))).toBe("retriable");
    expect(classifyKafkaError(new KafkaJS.KafkaJSError("u"))).toBe("unknown");
    expect(classifyKafkaError(new KafkaJS.KafkaJSError("fenced", { code: KafkaJS.ErrorCodes.ERR__FENCED }))).toBe("fatal");
    expect(classifyKafkaError(new Error("plain"))).toBe("unknown");
  });
});
