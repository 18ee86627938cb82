/** The admin token guard: constant-time comparison, Bearer parsing, and the interceptor's refusals. */
import { Code, ConnectError, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { bearerToken, requireToken, tokenMatches } from "./auth.ts";

/** Runs the interceptor around a handler that answers "called", with `authorization` as the header. */
async function call(token: string | undefined, authorization?: string): Promise<unknown> {
  const header = new Headers(authorization === undefined ? {} : { authorization });
  const next = () => Promise.resolve("called");
  const intercepted = requireToken(token)(next as never);
  return intercepted({ header } as unknown as UnaryRequest).catch((err: unknown) => err);
}

describe("tokenMatches", () => {
  it("accepts the same token and refuses others, also of other lengths", () => {
    expect(tokenMatches("s3cret-token", "s3cret-token")).toBe(true);
    expect(tokenMatches("s3cret-token", "s3cret-tokem")).toBe(false);
    expect(tokenMatches("s3cret-token", "s3cret")).toBe(false);
    expect(tokenMatches("s3cret-token", "")).toBe(false);
  });
});

describe("bearerToken", () => {
  it.each<[string | null, string | undefined]>([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["Bearer   abc  ", "abc"],
    ["Basic abc", undefined],
    ["Bearer", undefined],
    ["Bearer a b", undefined],
    ["abc", undefined],
    [null, undefined],
  ])("reads %j as %j", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe("requireToken", () => {
  it("lets a call with the right token through", async () => {
    expect(await call("tok", "Bearer tok")).toBe("called");
  });

  it.each<[string, string | undefined, string | undefined, RegExp]>([
    ["no header", "tok", undefined, /missing bearer token/],
    ["another scheme", "tok", "Basic tok", /missing bearer token/],
    ["a wrong token", "tok", "Bearer nope", /invalid bearer token/],
    ["ADMIN_TOKEN unset", undefined, "Bearer tok", /ADMIN_TOKEN is not set/],
    ["ADMIN_TOKEN empty", "", "Bearer ", /ADMIN_TOKEN is not set/],
  ])("refuses %s with Unauthenticated", async (_name, token, header, message) => {
    const err = await call(token, header);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    expect((err as ConnectError).rawMessage).toMatch(message);
  });
});
