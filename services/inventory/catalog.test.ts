import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCatalog } from "./catalog.ts";

const write = (products: unknown) => {
  const path = join(mkdtempSync(join(tmpdir(), "catalog-")), "catalog.json");
  writeFileSync(path, JSON.stringify({ products }));
  return path;
};

describe("catalog file", () => {
  it("loads the shipped demo catalog with the seeds' SKUs", () => {
    const catalog = loadCatalog();
    expect(catalog.map((p) => p.sku)).toEqual(expect.arrayContaining(["laptop", "laptop_001", "rare_item", "mouse"]));
    expect(catalog.find((p) => p.sku === "laptop")).toMatchObject({ priceMinor: 99999n, currency: "USD", stock: 50 });
  });

  it.each([
    [[{ sku: "a", currency: "USD", price: "9.999", stock: 1 }], /product 0 \(a\).*decimal places/],
    [[{ sku: "a", currency: "USD", price: "abc", stock: 1 }], /product 0 \(a\).*not a decimal/],
    [[{ sku: "a", currency: "USD", price: "1.00", stock: -1 }], /stock must be/],
    [[{ sku: "../x", currency: "USD", price: "1.00", stock: 1 }], /bad sku/],
  ])("names the bad entry", (products, message) => {
    expect(() => loadCatalog(write(products))).toThrow(message);
  });
});
