import { describe, expect, it } from "vitest";
import { PoisonRecordError, RejectedError, TransientError, errorClassOf, isOutage, isRetriable, messageOf } from "./errors.ts";

describe("error classification", () => {
  it("follows what the error says about itself", () => {
    expect(isRetriable(new TransientError("busy"))).toBe(true);
    expect(isRetriable(new PoisonRecordError("malformed", "bad"))).toBe(false);
    expect(isRetriable(new RejectedError("no"))).toBe(false);
    expect(isRetriable({ retriable: false })).toBe(false);
    expect(isRetriable(new Error("unknown"))).toBe(true);
  });

  it("tells an outage to wait out from a record to give up on", () => {
    expect(isOutage(new TransientError("rate limited"))).toBe(true);
    expect(isOutage(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))).toBe(true);
    expect(isOutage(new Error("Connection is closed."))).toBe(true);
    expect(isOutage(Object.assign(new Error("Reached the max retries per request limit"), { name: "MaxRetriesPerRequestError" }))).toBe(true);
    expect(isOutage(new PoisonRecordError("malformed", "bad"))).toBe(false);
    expect(isOutage(new TypeError("x is undefined"))).toBe(false);
    expect(isOutage("a string")).toBe(false);
  });

  it("gives stable class names", () => {
    expect(errorClassOf(new PoisonRecordError("invalid", "x"))).toBe("poison.invalid");
    expect(errorClassOf(new TransientError("x"))).toBe("transient");
    expect(errorClassOf(new TypeError("x"))).toBe("TypeError");
    expect(errorClassOf(new Error("x"))).toBe("unknown");
    expect(errorClassOf("a string")).toBe("unknown");
    expect(messageOf("plain")).toBe("plain");
  });
});
