import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AmountError, formatMinor, parseAmount } from "./money.ts";

describe("money at the edge", () => {
  it.each([
    ["999.99", "USD", 99999n],
    [999.99, "USD", 99999n],
    ["5", "USD", 500n],
    ["5.5", "EUR", 550n],
    ["1200", "JPY", 1200n],
    ["1.234", "KWD", 1234n],
    ["0.01", "USD", 1n],
  ])("%s %s → %s minor units", (value, currency, minor) => {
    expect(parseAmount(value, currency)).toBe(minor);
  });

  it.each([
    ["9.999", "USD", /more than 2 decimal places/],
    ["1.5", "JPY", /more than 0 decimal places/],
    ["-1", "USD", /not a decimal amount/],
    ["1e5", "USD", /not a decimal amount/],
    [Number.NaN, "USD", /not a decimal amount/],
    [null, "USD", /not a decimal amount/],
    ["10", "XXX", /not supported/],
  ])("refuses %s %s", (value, currency, message) => {
    expect(() => parseAmount(value, currency)).toThrow(AmountError);
    expect(() => parseAmount(value, currency)).toThrow(message);
  });

  it("formats as the currency writes it", () => {
    expect(formatMinor(99999n, "USD")).toBe("999.99");
    expect(formatMinor(5n, "USD")).toBe("0.05");
    expect(formatMinor(1200n, "JPY")).toBe("1200");
    expect(formatMinor(1234n, "KWD")).toBe("1.234");
    expect(formatMinor(-150n, "EUR")).toBe("-1.50");
  });

  it("round-trips every amount exactly", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 12n - 1n }), fc.constantFrom("USD", "JPY", "KWD"), (minor, currency) => {
        expect(parseAmount(formatMinor(minor, currency), currency)).toBe(minor);
      }),
    );
  });
});
