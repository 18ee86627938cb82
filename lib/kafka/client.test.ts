/** The client's error conversion works for every code we meet, with our fix for the one it lacks. */
import { createRequire } from "node:module";
import { KafkaJS } from "@confluentinc/kafka-javascript";
import { describe, expect, it } from "vitest";
import { classifyKafkaError } from "./transactions.ts";
import "./client.ts";

const { createKafkaJsErrorFromLibRdKafkaError } = createRequire(import.meta.url)("@confluentinc/kafka-javascript/lib/kafkajs/_common.js") as {
  createKafkaJsErrorFromLibRdKafkaError: (err: { message: string; code: number; retriable: boolean; fatal: boolean; abortable: boolean }) => Error;
};

describe("client errors", () => {
  it("converts GROUP_COORDINATOR_NOT_AVAILABLE (a node killed during sendOffsets) into a retriable KafkaJSError", () => {
    const converted = createKafkaJsErrorFromLibRdKafkaError({ message: "Broker: Group coordinator not available", code: KafkaJS.ErrorCodes.ERR_GROUP_COORDINATOR_NOT_AVAILABLE, retriable: true, fatal: false, abortable: false });
    expect(converted).toBeInstanceOf(KafkaJS.KafkaJSError);
    expect(converted.message).toMatch(/coordinator not available/);
    expect(classifyKafkaError(converted)).toBe("retriable");
  });
});
