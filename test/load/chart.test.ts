import { describe, expect, it } from "vitest";
import { lineChart, ticks } from "./chart.ts";

describe("benchmark chart", () => {
  it("ticks are round and reach past the largest value", () => {
    expect(ticks(89, 8)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(ticks(100, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(ticks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(ticks(0)).toEqual([0]);
  });

  it("keeps every point inside the plot", () => {
    const svg = lineChart({ title: "t <&>", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [[0, 1], [89, 4600]] }] });
    const xs = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => (m[1] ?? "").split(" ").map((p) => Number(p.split(",")[0])));
    expect(Math.max(...xs)).toBeLessThanOrEqual(744);
    expect(svg).toContain("t &lt;&amp;&gt;");
  });
});
