/**
 * Hostile requests at scale: while the load runs, M requests generated with fast-check (seeded from
 * the run's generator) go to the running order API, 8 in flight — REST (every route of API_SPEC.md,
 * and some that are not there) and Connect (every OrderService RPC, JSON and binary protobuf,
 * GET-style calls, gzip bodies and bombs, the WatchOrder stream with lying envelopes). Bodies are
 * valid orders mutated field by field into wrong types, huge numbers and strings, deep nesting,
 * unknown fields and duplicated keys, in odd charsets and encodings, some above the size limits;
 * headers come in every combination (Content-Type, Authorization — none, garbage, expired, foreign
 * key, alg none, another customer's token — and odd Idempotency-Keys).
 *
 * Every answer is counted by status class; a 5xx or a request without an answer (connection reset,
 * no response within the bound) fails the run. An order that a request happens to place validly
 * (2xx) is added to the load's accepted set, and a cancel answered 202 to its accepted cancels, so
 * the checker accounts for both like the load's own: the generator may produce valid requests —
 * unusual but legal ones (gzip-compressed Connect calls, odd Idempotency-Keys) are worth sending —
 * and nothing it makes valid can slip past the checker's "accepted set == orders.created".
 */
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { gzipSync } from "node:zlib";
import { fromBinary, fromJson, toBinary, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { codeToHttpStatus, endStreamFromJson } from "@connectrpc/connect/protocol-connect";
import fc from "fast-check";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { OrderService, PlaceOrderResponseSchema } from "../../gen/orderflow/v1/order_service_pb.ts";
import { loadConfig } from "../../lib/config.ts";
import { formatMinor } from "../../services/order/money.ts";
import { orderBody, testCards } from "../../services/cli/samples.ts";
import { signToken } from "../../services/cli/tokens.ts";
import { gzipBomb } from "../harness/hostile-bodies.ts";
import type { Fault, FaultContext } from "./faults.ts";
import { loadCatalog } from "./load.ts";
import { pathsOf, replaced } from "./poison.ts";

/** Requests in flight at once. */
const CONCURRENCY = 8;
/** How long a WatchOrder stream is read before the client leaves (a live stream answers nothing more). */
const STREAM_READ_MS = 1500;
/** Customers the hostile requests act as (their own rate-limit windows, apart from the load's). */
const HOSTILE_CUSTOMERS = 20;

export type StatusClass = "2xx" | "3xx" | "4xx" | "5xx";

/** What the hostile requests got back. */
export interface RequestCounts {
  readonly sent: number;
  readonly byClass: Readonly<Record<StatusClass, number>>;
  readonly byStatus: Readonly<Record<string, number>>;
  /** Requests without an HTTP answer: reset, refused, or no response within the bound. */
  readonly transportErrors: number;
  /** Generated requests Node's client would not send (a header it refuses to write): not sent, not counted above. */
  readonly notSent: number;
  /** Orders placed validly by a hostile request (added to the load's accepted set). */
  readonly ordersPlaced: number;
  /** Cancels answered 202 (added to the load's accepted cancels). */
  readonly cancelsAccepted: number;
  /** The first 5xx answers and transport errors: the request in short and what came back. */
  readonly failures: readonly string[];
}

/** Tallies the answers of the hostile requests of a run. */
export class RequestTally {
  #sent = 0;
  readonly #byClass: Record<StatusClass, number> = { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 };
  readonly #byStatus: Record<string, number> = {};
  #transportErrors = 0;
  #notSent = 0;
  #ordersPlaced = 0;
  #cancelsAccepted = 0;
  readonly #failures: string[] = [];

  answered(status: number, what: string, body: string): void {
    this.#sent += 1;
    const statusClass = `${Math.min(5, Math.max(2, Math.floor(status / 100)))}xx` as StatusClass;
    this.#byClass[statusClass] += 1;
    this.#byStatus[String(status)] = (this.#byStatus[String(status)] ?? 0) + 1;
    if (statusClass === "5xx") this.#failure(`${status} for ${what}: ${body.slice(0, 300)}`);
  }

  unanswered(what: string, error: string): void {
    this.#sent += 1;
    this.#transportErrors += 1;
    this.#failure(`no answer for ${what}: ${error}`);
  }

  refusedByClient(): void {
    this.#notSent += 1;
  }

  placed(): void {
    this.#ordersPlaced += 1;
  }

  cancelled(): void {
    this.#cancelsAccepted += 1;
  }

  #failure(line: string): void {
    if (this.#failures.length < 20) this.#failures.push(line);
  }

  counts(): RequestCounts {
    return { sent: this.#sent, byClass: { ...this.#byClass }, byStatus: { ...this.#byStatus }, transportErrors: this.#transportErrors, notSent: this.#notSent, ordersPlaced: this.#ordersPlaced, cancelsAccepted: this.#cancelsAccepted, failures: [...this.#failures] };
  }
}

/** How a request presents itself: which token (or none, or junk) in which form. */
export type AuthKind =
  | "none"
  | "customer"
  | "operator"
  | "expired"
  | "wrong-issuer"
  | "wrong-audience"
  | "foreign-key"
  | "alg-none"
  | "garbage"
  | "scheme-only"
  | "basic"
  | "lowercase-scheme"
  | "oversized"
  | "duplicated";

/** Which order a request names: one of the load's, one this fault placed, an unknown UUID, or no UUID at all. */
type Target = { readonly kind: "load" | "placed" | "unknown"; readonly pick: number } | { readonly kind: "malformed"; readonly id: string };

/** A request as generated: everything but the tokens and the order ids, which are filled in when it is sent. */
export interface RequestPlan {
  readonly label: string;
  readonly method: string;
  /** Path and query; `{id}` is replaced by the target's id. */
  readonly path: string;
  readonly target?: Target;
  readonly auth: AuthKind;
  /** Index of the hostile customer the request acts as (token subject, body customer_id). */
  readonly caller: number;
  readonly headers: readonly (readonly [string, string])[];
  /** `{caller}` in the body is replaced by the caller's customer id. */
  readonly body?: Buffer;
  /** Send without Content-Length (chunked). */
  readonly chunked: boolean;
  /** What a 2xx means for the checker. */
  readonly effect?: "rest-place" | "rpc-place-json" | "rpc-place-proto" | "rest-cancel" | "rpc-cancel";
  /** A Connect server stream: read for a moment, then leave. */
  readonly stream: boolean;
}

const CALLER = "{caller}";
const customerOf = (caller: number) => `hostile-${caller % HOSTILE_CUSTOMERS}`;

/** Header-safe text (HTTP field values: visible Latin-1, space and tab). */
const headerText = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength });

/** Values that break a JSON field of any kind: wrong types, huge, tiny, nested, odd strings. */
const badJsonValue: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.constantFrom<JsonValue>(null, true, false, 0, -1, 1e308, -1e308, 5e-324, 2 ** 53 + 1, -2147483649, 4294967296, "", " ", "-1", "1e400", "999999999999.9999", "0x10", "NaN", "Infinity", "\u0000", "\ud800", "\u202e", "💥", [], {}, [[]], { "": null }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.double(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.integer({ min: 100, max: 60_000 }).map((n) => "9".repeat(n)),
  fc.integer({ min: 1, max: 100 }).map((depth) => JSON.parse(`${"[".repeat(depth)}1${"]".repeat(depth)}`) as JsonValue),
  fc.jsonValue({ maxDepth: 3 }).map((value) => value as JsonValue),
);

/** `json` with 0–3 mutations: a field set to a bad value or removed, an unknown field added. */
function mutatedJson(json: JsonObject): fc.Arbitrary<JsonObject> {
  const paths = pathsOf(json);
  const mutation = fc.oneof(
    fc.record({ path: paths.length > 0 ? fc.constantFrom(...paths) : fc.constant([] as (string | number)[]), value: fc.option(badJsonValue, { nil: undefined, freq: 6 }) }).map(({ path, value }) => (root: JsonObject) => (path.length === 0 ? root : replaced(root, path, value))),
    fc.record({ name: fc.string({ minLength: 1, maxLength: 30 }), value: badJsonValue }).map(({ name, value }) => (root: JsonObject) => ({ ...root, [name]: value })),
  );
  return fc.array(mutation, { maxLength: 3 }).map((mutations) => mutations.reduce((root, mutate) => mutate(root), json));
}

/** Raw-text hostility on a JSON document: duplicated keys, deep nesting (up to 20,000 levels), trailing garbage, a cut, or nothing. */
const textTwist = fc.oneof(
  { weight: 1, arbitrary: fc.record({ depth: fc.integer({ min: 100, max: 20_000 }), open: fc.constantFrom("[", '{"a":') }).map(({ depth, open }) => (text: string) => (text.startsWith("{") ? `{"items":${open.repeat(depth)}1${(open === "[" ? "]" : "}").repeat(depth)},${text.slice(1)}` : text)) },
  { weight: 4, arbitrary: fc.constant((text: string) => text) },
  { weight: 1, arbitrary: fc.constantFrom("customer_id", "items", "currency", "order_id", "page_size", "payment").map((key) => (text: string) => (text.startsWith("{") ? `{"${key}":"first",${text.slice(1)}` : text)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map((tail) => (text: string) => `${text}${tail}`) },
  { weight: 1, arbitrary: fc.nat().map((n) => (text: string) => text.slice(0, n % Math.max(1, text.length))) },
);

/** How a body's bytes are made from its text: charsets, broken UTF-8, compression, size. */
type Encoding = "utf8" | "utf16" | "latin1" | "broken-utf8" | "gzip" | "bomb" | "oversized" | "random";
const encodings = fc.constantFrom<Encoding>("utf8", "utf8", "utf8", "utf8", "utf16", "latin1", "broken-utf8", "gzip", "bomb", "oversized", "random");

const SIZE_LIMIT = 64 * 1024;

/** Compression bombs, made once: small on the wire, 1 to 48 MiB of zeros inflated. */
const bombs: Buffer[] = [];
function bomb(pick: number): Buffer {
  if (bombs.length === 0) bombs.push(...[1, 8, 48].map((mib) => gzipBomb(mib)));
  return bombs[pick % bombs.length] ?? Buffer.alloc(0);
}

/** The bytes of `text` under `encoding`, and the headers that go with them. */
function encode(text: string, encoding: Encoding, pick: number): { body: Buffer; headers: [string, string][] } {
  switch (encoding) {
    case "utf8":
      return { body: Buffer.from(text), headers: [] };
    case "utf16":
      return { body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]), headers: [] };
    case "latin1":
      return { body: Buffer.from(`${text.slice(0, -1)}"é\xff"${text.slice(-1)}`, "latin1"), headers: [] };
    case "broken-utf8": {
      const bytes = Buffer.from(text);
      const at = pick % Math.max(1, bytes.length);
      return { body: Buffer.concat([bytes.subarray(0, at), Buffer.from([0xc3, 0x28, 0xed, 0xa0, 0x80, 0xff]), bytes.subarray(at)]), headers: [] };
    }
    case "gzip":
      return { body: gzipSync(text), headers: [["content-encoding", "gzip"], ["connect-content-encoding", "gzip"]] };
    case "bomb":
      return { body: bomb(pick), headers: [["content-encoding", "gzip"]] };
    case "oversized":
      // Valid JSON padded past the limit: only its size is wrong.
      return { body: Buffer.concat([Buffer.from(text), Buffer.alloc(SIZE_LIMIT + 1 + (pick % (1024 * 1024)), 0x20)]), headers: [] };
    case "random":
      return { body: Buffer.from(Array.from({ length: pick % 2048 }, (_, i) => (i * 7919 + pick) % 256)), headers: [] };
  }
}

const jsonContentTypes = fc.constantFrom<string | undefined>(
  "application/json", "application/json", "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16", "APPLICATION/JSON", "application/json;;;", "application/jsonx",
  "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/proto", "*/*", "", undefined,
);

const authKinds = fc.constantFrom<AuthKind>("customer", "customer", "customer", "customer", "operator", "none", "expired", "wrong-issuer", "wrong-audience", "foreign-key", "alg-none", "garbage", "scheme-only", "basic", "lowercase-scheme", "oversized", "duplicated");

const idempotencyKeys = fc.oneof(
  fc.constant(undefined),
  headerText(40),
  fc.constantFrom("", " ", "same-key-for-every-hostile-request", "../../etc/passwd", "' OR 1=1 --", "\t"),
  fc.integer({ min: 129, max: 8000 }).map((n) => "k".repeat(n)),
);

const targets: fc.Arbitrary<Target> = fc.oneof(
  fc.record({ kind: fc.constantFrom("load" as const, "placed" as const, "unknown" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("malformed" as const), id: fc.oneof(fc.constantFrom("..", "%2e%2e", "%00", "0", "null", "00000000-0000-0000-0000-00000000000G", "x".repeat(5000), "%F0%9F%92%A5", "a b", "%ZZ"), fc.webSegment()) }),
);

/** A valid REST order body for the caller (`{caller}` filled in when sent), on the load's SKUs. */
function validOrderJson(lines: number): JsonObject {
  const items = loadCatalog.slice(0, 2).slice(0, lines).map((p) => ({ product_id: p.sku, quantity: 1, price: formatMinor(p.priceMinor, p.currency) }));
  return orderBody({ customerId: CALLER, email: "hostile@example.com", items, card: testCards.success }) as unknown as JsonObject;
}

const restPlace: fc.Arbitrary<Partial<RequestPlan>> = fc
  .record({ lines: fc.integer({ min: 1, max: 2 }), twist: textTwist, encoding: encodings, pick: fc.nat(), contentType: jsonContentTypes, key: idempotencyKeys, otherCustomer: fc.boolean() })
  .chain((shape) => mutatedJson(validOrderJson(shape.lines)).map((json) => ({ ...shape, json })))
  .map(({ json, twist, encoding, pick, contentType, key, otherCustomer }) => {
    const text = twist(JSON.stringify(otherCustomer ? { ...json, customer_id: "load-1" } : json));
    const { body, headers } = encode(text, encoding, pick);
    return {
      label: `POST /orders (${encoding})`,
      method: "POST",
      path: "/orders",
      body,
      headers: [...(contentType === undefined ? [] : [["content-type", contentType] as [string, string]]), ...(key === undefined ? [] : [["idempotency-key", key] as [string, string]]), ...headers],
      effect: "rest-place" as const,
    };
  });

const pageSizes = fc.oneof(fc.constantFrom("", "0", "1", "50", "200", "201", "-1", "1e3", "abc", "9999999999999999999", "NaN", "%00"), fc.integer().map(String));
const restRead: fc.Arbitrary<Partial<RequestPlan>> = fc.oneof(
  fc.record({ pageSize: pageSizes, status: fc.constantFrom("", "pending", "COMPLETED", "ORDER_STATUS_FAILED", "bogus", "%ff"), customer: fc.constantFrom("", CALLER, "load-1", "hostile-0", "*", "%00"), token: fc.oneof(fc.constant(""), fc.base64String({ maxLength: 200 }), headerText(60).map(encodeURIComponent)) }).map(({ pageSize, status, customer, token }) => ({
    label: "GET /orders",
    method: "GET",
    path: `/orders?page_size=${pageSize}&status=${status}&customer_id=${customer}&page_token=${token}`,
  })),
  fc.record({ target: targets, tail: fc.constantFrom("", "/events", "/events/", "/", "/x", "?page_size=-1") }).map(({ target, tail }) => ({ label: `GET /orders/{id}${tail}`, method: "GET", path: `/orders/{id}${tail}`, target })),
  fc.oneof(fc.constantFrom("chaos_common", "chaos_scarce", "", "..", "%00", "x".repeat(3000)), fc.webSegment()).map((sku) => ({ label: "GET /products/{sku}", method: "GET", path: sku === "" ? "/products" : `/products/${sku}` })),
  fc.record({ method: fc.constantFrom("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "GET", "POST"), path: fc.constantFrom("/", "/orders/", "/orders//cancel", "/products", "/metrics", "/health/live", "/admin", "/dashboard", "/orderflow.v1.OrderService/", "//orders", "/orders/{id}/cancel/again", "/%2e%2e/etc") }).map(({ method, path }) => ({
    label: `${method} ${path}`,
    method,
    path,
    target: { kind: "load" as const, pick: 0 },
  })),
);

const restCancel: fc.Arbitrary<Partial<RequestPlan>> = fc
  .record({ target: targets, reason: fc.option(badJsonValue, { nil: undefined }), contentType: jsonContentTypes, encoding: encodings, pick: fc.nat(), twist: textTwist, empty: fc.boolean() })
  .map(({ target, reason, contentType, encoding, pick, twist, empty }) => {
    const { body, headers } = empty ? { body: undefined, headers: [] } : encode(twist(JSON.stringify(reason === undefined ? {} : { reason })), encoding, pick);
    return {
      label: `POST /orders/{id}/cancel (${empty ? "no body" : encoding})`,
      method: "POST",
      path: "/orders/{id}/cancel",
      target,
      ...(body === undefined ? {} : { body }),
      headers: [...(contentType === undefined ? [] : [["content-type", contentType] as [string, string]]), ...headers],
      effect: "rest-cancel" as const,
    };
  });

/** A valid request of each unary OrderService method, in proto3 JSON (`{id}` and `{caller}` filled in when sent). */
function validRpcJson(method: string): JsonObject {
  switch (method) {
    case "PlaceOrder": {
      const body = validOrderJson(1);
      return { ...body, customer_email: "hostile@example.com" };
    }
    case "ListOrders":
      return { page_size: 10 };
    case "CancelOrder":
      return { order_id: "{id}", reason: "hostile" };
    case "GetProduct":
      return { sku: "chaos_common" };
    case "ListProducts":
      return {};
    default:
      return { order_id: "{id}" };
  }
}

const unaryMethods = OrderService.methods.filter((m) => m.methodKind === "unary");
const rpcContentTypes = fc.constantFrom<string | undefined>("application/json", "application/proto", "application/json", "application/proto", "application/json; charset=utf-8", "application/x-protobuf", "application/connect+json", "application/grpc", "text/plain", "", undefined);

/** Encodes a (maybe mutated) request JSON as binary protobuf when it still parses as the type; otherwise its JSON text. */
function protoBytes(schema: DescMessage, json: JsonObject): Buffer {
  try {
    return Buffer.from(toBinary(schema, fromJson(schema, json)));
  } catch {
    return Buffer.from(JSON.stringify(json));
  }
}

const rpcUnary: fc.Arbitrary<Partial<RequestPlan>> = fc
  .record({ method: fc.constantFrom(...unaryMethods), unknownMethod: fc.option(fc.constantFrom("/orderflow.v1.OrderService/DropOrders", "/orderflow.v1.AdminService/SetStock", "/grpc.health.v1.Health/Check", "/orderflow.v1.OrderService/placeOrder"), { nil: undefined, freq: 15 }), contentType: rpcContentTypes, version: fc.constantFrom<string | undefined>("1", "1", "1", undefined, "2", "one"), encoding: encodings, pick: fc.nat(), target: targets, twist: textTwist, timeout: fc.constantFrom<string | undefined>(undefined, undefined, "0", "1", "-5", "99999999999", "abc") })
  .chain((shape) => mutatedJson(validRpcJson(shape.method.name)).map((json) => ({ ...shape, json })))
  .map(({ method, unknownMethod, contentType, version, encoding, pick, target, twist, json, timeout }) => {
    const binary = contentType === "application/proto" || contentType === "application/x-protobuf";
    const text = binary ? "" : twist(JSON.stringify(json));
    const { body, headers } = binary && encoding !== "oversized" && encoding !== "bomb" && encoding !== "random"
      ? { body: encoding === "gzip" ? gzipSync(protoBytes(method.input, json)) : protoBytes(method.input, json), headers: encoding === "gzip" ? [["content-encoding", "gzip"] as [string, string]] : [] }
      : encode(binary ? JSON.stringify(json) : text, encoding, pick);
    const effect = method.name === "PlaceOrder" ? (binary ? ("rpc-place-proto" as const) : ("rpc-place-json" as const)) : method.name === "CancelOrder" ? ("rpc-cancel" as const) : undefined;
    return {
      label: `Connect ${unknownMethod ?? method.name} (${contentType ?? "no content-type"}, ${encoding})`,
      method: "POST",
      path: unknownMethod ?? `/${OrderService.typeName}/${method.name}`,
      target,
      body,
      headers: [
        ...(contentType === undefined ? [] : [["content-type", contentType] as [string, string]]),
        ...(version === undefined ? [] : [["connect-protocol-version", version] as [string, string]]),
        ...(timeout === undefined ? [] : [["connect-timeout-ms", timeout] as [string, string]]),
        ...headers,
      ],
      ...(effect === undefined || unknownMethod !== undefined ? {} : { effect }),
    };
  });

/** Connect GET calls of the side-effect-free methods, with odd query parameters. */
const rpcGet: fc.Arbitrary<Partial<RequestPlan>> = fc
  .record({ method: fc.constantFrom("GetOrder", "ListOrders", "ListOrderEvents", "GetProduct", "ListProducts"), encoding: fc.constantFrom("json", "proto", "xml", ""), base64: fc.constantFrom("", "1", "0", "yes"), compression: fc.constantFrom("", "gzip", "br", "snappy"), target: targets, message: fc.oneof(fc.constant("{id}"), headerText(80)) })
  .map(({ method, encoding, base64, compression, target, message }) => ({
    label: `Connect GET ${method}`,
    method: "GET",
    path: `/${OrderService.typeName}/${method}?connect=v1&encoding=${encoding}&base64=${base64}&compression=${compression}&message=${encodeURIComponent(message === "{id}" ? JSON.stringify({ order_id: "{id}" }) : message)}`,
    target,
  }));

/** A Connect stream envelope: flags, a 4-byte length (true or a lie), the payload. */
function envelope(flags: number, payload: Buffer, declaredLength?: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags & 0xff, 0);
  head.writeUInt32BE((declaredLength ?? payload.length) >>> 0, 1);
  return Buffer.concat([head, payload]);
}

const rpcWatch: fc.Arbitrary<Partial<RequestPlan>> = fc
  .record({ json: fc.boolean(), target: targets, flags: fc.constantFrom(0, 0, 0, 1, 2, 0x80, 0xff), lie: fc.option(fc.constantFrom(0, 1, 0xffff, 0xffffffff), { nil: undefined, freq: 3 }), compression: fc.constantFrom("none", "none", "gzip", "bomb", "unknown"), pick: fc.nat(), extra: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined, freq: 4 }) })
  .chain((shape) => mutatedJson({ order_id: "{id}" }).map((request) => ({ ...shape, request })))
  .map(({ json, target, flags, lie, compression, pick, extra, request }) => {
    const raw = json ? Buffer.from(JSON.stringify(request)) : protoBytes(OrderService.method.watchOrder.input, request);
    const payload = compression === "gzip" ? gzipSync(raw) : compression === "bomb" ? bomb(pick) : raw;
    const body = Buffer.concat([envelope(compression === "gzip" || compression === "bomb" ? flags | 1 : flags, payload, lie), ...(extra === undefined ? [] : [Buffer.from(extra)])]);
    return {
      label: `Connect WatchOrder (${json ? "json" : "proto"}, flags ${flags}, ${compression}${lie === undefined ? "" : `, length ${lie}`})`,
      method: "POST",
      path: `/${OrderService.typeName}/WatchOrder`,
      target,
      body,
      headers: [
        ["content-type", json ? "application/connect+json" : "application/connect+proto"] as [string, string],
        ["connect-protocol-version", "1"] as [string, string],
        ...(compression === "none" ? [] : [["connect-content-encoding", compression === "unknown" ? "snappy" : "gzip"] as [string, string]]),
      ],
      stream: true,
    };
  });

/** The arbitrary of one hostile request. */
export const hostileRequest: fc.Arbitrary<RequestPlan> = fc
  .record({
    shape: fc.oneof({ weight: 5, arbitrary: restPlace }, { weight: 4, arbitrary: restRead }, { weight: 2, arbitrary: restCancel }, { weight: 6, arbitrary: rpcUnary }, { weight: 1, arbitrary: rpcGet }, { weight: 2, arbitrary: rpcWatch }),
    auth: authKinds,
    caller: fc.nat({ max: HOSTILE_CUSTOMERS - 1 }),
    chunked: fc.boolean(),
    noise: fc.array(fc.tuple(fc.constantFrom("x-forwarded-for", "accept", "accept-encoding", "accept-charset", "connect-accept-encoding", "origin", "cookie", "x-request-id", "traceparent", "transfer-encoding-x"), headerText(100)), { maxLength: 3 }),
  })
  .map(({ shape, auth, caller, chunked, noise }): RequestPlan => ({
    label: shape.label ?? "?",
    method: shape.method ?? "GET",
    path: shape.path ?? "/",
    ...(shape.target === undefined ? {} : { target: shape.target }),
    auth,
    caller,
    headers: [...(shape.headers ?? []), ...noise],
    ...(shape.body === undefined ? {} : { body: shape.body }),
    chunked,
    ...(shape.effect === undefined ? {} : { effect: shape.effect }),
    stream: shape.stream ?? false,
  }));

/** `count` hostile requests, the same for the same seed. */
export function generateRequests(count: number, seed: number): RequestPlan[] {
  return count <= 0 ? [] : fc.sample(hostileRequest, { seed, numRuns: count });
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** The Authorization values of every kind, for each hostile customer (tokens signed once, before sending). */
async function authorizations(ctx: FaultContext): Promise<(kind: AuthKind, caller: number) => string[]> {
  const pem = readFileSync(ctx.system.signingKeyFile, "utf8");
  const foreign = generateKeyPairSync("ec", { namedCurve: "prime256v1", privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } }).privateKey;
  const customers = Array.from({ length: HOSTILE_CUSTOMERS }, (_, i) => customerOf(i));
  const tokens = await Promise.all(customers.map((c) => ctx.system.credentials.forCustomer(c)));
  const operator = await ctx.system.credentials.operator();
  const subject = customers[0] ?? "hostile-0";
  const special = {
    expired: await signToken(pem, { subject, ttlSeconds: -120 }),
    "wrong-issuer": await signToken(pem, { subject, issuer: "someone-else" }),
    "wrong-audience": await signToken(pem, { subject, audience: "another-api" }),
    "foreign-key": await signToken(foreign, { subject, operator: true }),
    "alg-none": `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: subject, scope: "orders:operator", iss: "orderflow-local", aud: "orderflow-order-api", exp: Math.floor(Date.now() / 1000) + 3600 })}.`,
  } as const;
  return (kind, caller) => {
    const own = tokens[caller % tokens.length] ?? "";
    switch (kind) {
      case "none":
        return [];
      case "customer":
        return [`Bearer ${own}`];
      case "operator":
        return [`Bearer ${operator}`];
      case "garbage":
        return [`Bearer ${own.split("").reverse().join("")}`];
      case "scheme-only":
        return ["Bearer"];
      case "basic":
        return [`Basic ${Buffer.from(`${subject}:secret`).toString("base64")}`];
      case "lowercase-scheme":
        return [`bearer ${own}`];
      case "oversized":
        return [`Bearer ${own}${"A".repeat(20_000)}`];
      case "duplicated":
        return [`Bearer ${own}`, `Bearer ${operator}`];
      default:
        return [`Bearer ${special[kind]}`];
    }
  };
}

/** What one request got: its status and body, or why it got none. */
type Answer = { readonly status: number; readonly body: Buffer; readonly headers: IncomingHttpHeaders } | { readonly error: string } | { readonly notSent: string };

/**
 * Sends one request and collects the answer within `timeoutMs`. A server stream is read for
 * STREAM_READ_MS and then left (a live watch has nothing more to say). An answer that arrives
 * while the body is still being sent counts (a server may refuse an oversized body unread).
 */
function send(url: URL, method: string, headers: readonly (readonly [string, string])[], body: Buffer | undefined, chunked: boolean, stream: boolean, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const outgoing: Record<string, string | string[]> = {};
    for (const [name, value] of headers) {
      const existing = outgoing[name];
      outgoing[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
    }
    if (body !== undefined && !chunked) outgoing["content-length"] = String(body.length);
    let settled = false;
    const finish = (answer: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(answer);
    };
    let req: ReturnType<typeof request>;
    try {
      req = request(url, { method, headers: outgoing, agent: false });
    } catch (err) {
      // The client refused to send it (a header Node will not write): not a request the server saw.
      resolve({ notSent: err instanceof Error ? err.message : String(err) });
      return;
    }
    const timer = setTimeout(() => finish({ error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    let responded = false;
    req.on("response", (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      const done = () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers });
      if (stream && res.statusCode === 200) setTimeout(done, STREAM_READ_MS).unref();
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", done);
      res.on("error", done);
    });
    req.on("error", (err) => {
      // The answer came and the server closed while the body was still going out: answered.
      if (!responded) finish({ error: err.message });
    });
    if (body === undefined) req.end();
    else req.end(body);
  });
}

/** The status a Connect stream ended with: its end-stream error's HTTP equivalent, or 200. */
export function streamStatus(body: Buffer): number {
  let offset = 0;
  let status = 200;
  while (offset + 5 <= body.length) {
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    const payload = body.subarray(offset + 5, offset + 5 + length);
    if ((flags & 0b10) !== 0 && payload.length === length) {
      const error = endStreamFromJson(payload).error;
      status = error === undefined ? 200 : codeToHttpStatus(error.code);
    }
    offset += 5 + length;
  }
  return status;
}

/** The id a 2xx PlaceOrder answer carries, whichever transport it came by. */
function placedOrderId(plan: RequestPlan, body: Buffer): string | undefined {
  try {
    if (plan.effect === "rpc-place-proto") return fromBinary(PlaceOrderResponseSchema, body).orderId || undefined;
    const json = JSON.parse(body.toString("utf8")) as { order_id?: string; orderId?: string };
    return json.order_id ?? json.orderId;
  } catch {
    return undefined;
  }
}

/** The hostile-requests fault: `count` generated requests against the running order API. */
export function hostileRequests(count: number): Fault {
  return {
    name: "hostile-requests",
    description: `${count} generated hostile requests (REST and Connect: wrong types, huge and nested values, odd charsets, gzip bombs, unknown fields, duplicated keys, every Authorization/Content-Type/Idempotency-Key combination, bodies over the limits, WatchOrder streams) ${CONCURRENCY} in flight: no 5xx, every one answered`,
    async run(ctx) {
      const seed = uniformInt(ctx.rng, 0, 0x7fffffff);
      const plans = generateRequests(count, seed);
      const authOf = await authorizations(ctx);
      // The slowest legal answer is a PlaceOrder waiting for Kafka's ack (KAFKA_DELIVERY_TIMEOUT_MS);
      // past that and a margin, a request without an answer is a hang.
      const timeoutMs = loadConfig("order", ctx.serviceSettings).kafka.deliveryTimeoutMs + 5000;
      const placed: string[] = [];
      const loadOrders = [...ctx.load.accepted.keys()];
      const idOf = (target: Target | undefined): string => {
        if (target === undefined) return "";
        if (target.kind === "malformed") return target.id;
        if (target.kind === "load") return loadOrders[target.pick % Math.max(1, loadOrders.length)] ?? "";
        if (target.kind === "placed" && placed.length > 0) return placed[target.pick % placed.length] ?? "";
        return `00000000-0000-4000-8000-${String(target.pick % 1e12).padStart(12, "0")}`;
      };
      ctx.note("hostile requests begin", { seed, requests: plans.length, concurrency: CONCURRENCY, timeoutMs });
      const apis = ctx.system.apiUrls;
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < plans.length; i = next++) {
          const plan = plans[i];
          if (plan === undefined) continue;
          const id = idOf(plan.target);
          const fill = (text: string) => text.replaceAll("{id}", id).replaceAll(CALLER, customerOf(plan.caller));
          const url = new URL(fill(plan.path).replace(/^\/+/, "/"), apis[i % apis.length]);
          const body = plan.body === undefined ? undefined : plan.body.includes(CALLER) || plan.body.includes("{id}") ? Buffer.from(fill(plan.body.toString("latin1")), "latin1") : plan.body;
          const headers = [...plan.headers, ...authOf(plan.auth, plan.caller).map((value) => ["authorization", value] as const)];
          const what = `${plan.label} ${plan.method} ${url.pathname} auth=${plan.auth}`;
          const answer = await send(url, plan.method, headers, body, plan.chunked, plan.stream, timeoutMs);
          if ("notSent" in answer) {
            ctx.requests.refusedByClient();
            continue;
          }
          if ("error" in answer) {
            ctx.requests.unanswered(what, answer.error);
            continue;
          }
          const status = plan.stream && answer.status === 200 ? streamStatus(answer.body) : answer.status;
          ctx.requests.answered(status, what, answer.body.toString("utf8"));
          if (status < 200 || status > 299) continue;
          if (plan.effect === "rest-place" || plan.effect === "rpc-place-json" || plan.effect === "rpc-place-proto") {
            const orderId = placedOrderId(plan, answer.body);
            if (orderId === undefined) ctx.problems.push(`hostile-requests: a ${status} answer to ${what} carries no order id`);
            else {
              ctx.load.accepted.set(orderId, Date.now());
              placed.push(orderId);
              ctx.requests.placed();
            }
          }
          if ((plan.effect === "rest-cancel" || plan.effect === "rpc-cancel") && ctx.load.accepted.has(id)) {
            ctx.load.cancelsAccepted.add(id);
            ctx.requests.cancelled();
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, () => worker()));
      const counts = ctx.requests.counts();
      ctx.note("hostile requests answered", { sent: counts.sent, ...counts.byClass, transportErrors: counts.transportErrors, ordersPlaced: counts.ordersPlaced, cancelsAccepted: counts.cancelsAccepted });
      // Every process still alive and answering: a crash is recorded by the system as well, a hang is not.
      for (const [name, ops] of Object.entries(ctx.system.opsUrls)) {
        const live = await fetch(`${ops}/health/live`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false);
        if (!live && ctx.system.pidOf(name) !== undefined && ctx.system.processes.includes(name)) ctx.problems.push(`hostile-requests: ${name} does not answer /health/live after the requests`);
      }
    },
  };
}
