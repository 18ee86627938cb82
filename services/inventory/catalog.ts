/** The product catalog file (services/inventory/catalog.json by default), read and checked. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAmount } from "../order/money.ts";
import type { CatalogEntry } from "./stock.ts";

export const defaultCatalogPath = join(dirname(fileURLToPath(import.meta.url)), "catalog.json");

/** Reads a catalog; throws an error naming the entry that is wrong. */
export function loadCatalog(path = defaultCatalogPath): CatalogEntry[] {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as { products?: unknown };
  if (!Array.isArray(parsed.products)) throw new Error(`${path}: "products" must be a list`);
  return parsed.products.map((raw: unknown, index) => {
    const entry = raw as Record<string, unknown>;
    const sku = typeof entry["sku"] === "string" ? entry["sku"] : "";
    const where = `${path}: product ${index} (${sku || "no sku"})`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(sku)) throw new Error(`${where}: bad sku`);
    const currency = typeof entry["currency"] === "string" ? entry["currency"] : "";
    const stock = entry["stock"];
    if (typeof stock !== "number" || !Number.isInteger(stock) || stock < 0) throw new Error(`${where}: stock must be a whole number >= 0`);
    let priceMinor: bigint;
    try {
      priceMinor = parseAmount(entry["price"], currency);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
    }
    return { sku, name: typeof entry["name"] === "string" ? entry["name"] : sku, currency, priceMinor, stock };
  });
}
