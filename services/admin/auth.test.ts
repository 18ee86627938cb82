/** The admin token guard: constant-time comparison, Bearer parsing, and its refusals. */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { bearerToken, tokenMatches, tokenRefusal } from "./auth.ts";

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

describe("tokenRefusal", () => {
  it("lets a call with the right token through", () => {
    expect(tokenRefusal("tok", "Bearer tok")).toBeUndefined();
  });

  it.each<[string, string | undefined, string | undefined, RegExp]>([
    ["no header", "tok", undefined, /missing bearer token/],
    ["another scheme", "tok", "Basic tok", /missing bearer token/],
    ["a wrong token", "tok", "Bearer nope", /invalid bearer token/],
    ["ADMIN_TOKEN unset", undefined, "Bearer tok", /ADMIN_TOKEN is not set/],
    ["ADMIN_TOKEN empty", "", "Bearer ", /ADMIN_TOKEN is not set/],
  ])("refuses %s with Unauthenticated", (_name, token, header, message) => {
    const err = tokenRefusal(token, header);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    expect((err as ConnectError).rawMessage).toMatch(message);
  });
});
