/**
 * Money at the API edge: decimal strings (or the seeds' JSON numbers) in, integer minor units
 * inside, decimal strings out. An amount with more decimals than its currency has is refused, never
 * rounded. Exponents are ISO 4217's for the currencies we accept.
 */

/** Minor-unit exponent per accepted ISO 4217 currency. */
export const currencyExponents: Readonly<Record<string, number>> = {
  USD: 2, EUR: 2, GBP: 2, CHF: 2, CAD: 2, AUD: 2, NZD: 2, SEK: 2, NOK: 2, DKK: 2, PLN: 2, CZK: 2,
  INR: 2, CNY: 2, HKD: 2, SGD: 2, MXN: 2, BRL: 2, ZAR: 2,
  JPY: 0, KRW: 0, ISK: 0, CLP: 0, VND: 0,
  BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3,
};

/** Why an amount was refused. */
export class AmountError extends Error {
  override readonly name = "AmountError";
}

/** "999.99" (or 999.99) in `currency` → 99999n. Throws AmountError for anything that does not fit. */
export function parseAmount(value: unknown, currency: string): bigint {
  const exponent = currencyExponents[currency];
  if (exponent === undefined) throw new AmountError(`currency ${currency} is not supported`);
  const text = typeof value === "number" && Number.isFinite(value) ? String(value) : value;
  if (typeof text !== "string" || !/^\d{1,12}(\.\d+)?$/.test(text)) {
    throw new AmountError(`${JSON.stringify(value)} is not a decimal amount`);
  }
  const [whole = "0", fraction = ""] = text.split(".");
  if (fraction.length > exponent) {
    throw new AmountError(`${text} has more than ${exponent} decimal places for ${currency}`);
  }
  return BigInt(whole) * 10n ** BigInt(exponent) + BigInt(fraction.padEnd(exponent, "0") || "0");
}

/** 99999n in USD → "999.99". */
export function formatMinor(amountMinor: bigint, currency: string): string {
  const exponent = currencyExponents[currency] ?? 2;
  if (exponent === 0) return amountMinor.toString();
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(exponent + 1, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}
