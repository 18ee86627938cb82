import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, maskCardNumber, maskEmail, sensitiveFields } from "./log.ts";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return { lines, log: createLogger("test", "info", stream) };
}

describe("masking", () => {
  it("keeps the last four digits of a card", () => {
    expect(maskCardNumber("4242424242424242")).toBe("************4242");
    expect(maskCardNumber("12")).toBe("****");
  });

  it("keeps the first letter and domain of an email", () => {
    expect(maskEmail("ada@example.com")).toBe("a***@example.com");
    expect(maskEmail("nonsense")).toBe("***");
  });

  it("never writes a sensitive field in clear, at any of the first levels", () => {
    const { lines, log } = capture();
    log.info({
      card_number: "4242424242424242",
      customer_email: "ada@example.com",
      token: "tok_secret_value",
      payment: { card_number: "4000000000000002", authorization: "Bearer s3cr3t" },
      request: { body: { customer_email: "bob@example.com" } },
    }, "placing order");
    const out = lines.join("");
    for (const secret of ["4242424242424242", "ada@example.com", "tok_secret_value", "4000000000000002", "s3cr3t", "bob@example.com"]) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain("************4242");
    expect(out).toContain("a***@example.com");
    expect(JSON.parse(out)).toMatchObject({ service: "test", level: "info", msg: "placing order" });
  });

  it("lists the fields it masks", () => {
    expect(sensitiveFields).toEqual(expect.arrayContaining(["card_number", "customer_email", "authorization"]));
  });
});
