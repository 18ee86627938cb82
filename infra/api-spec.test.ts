import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MARKER, apiSpecPath, renderReference, withReference } from "./api-spec.ts";

describe("API_SPEC.md", () => {
  it("matches the protos (run `make gen` after changing them)", () => {
    const current = readFileSync(apiSpecPath, "utf8");
    expect(current).toContain(MARKER);
    expect(withReference(current)).toBe(current);
  });

  it("documents every RPC and the validation rules", () => {
    const reference = renderReference();
    expect(reference).toContain("| PlaceOrder | PlaceOrderRequest | PlaceOrderResponse | unary |");
    expect(reference).toContain("| WatchOrder | WatchOrderRequest | WatchOrderResponse | server_streaming |");
    expect(reference).toMatch(/`order_id` \| string \| `string.uuid=true`/);
    expect(reference).toContain("`orders.created.dlq`");
  });
});
