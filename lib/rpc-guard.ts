/**
 * What an RPC server checks at the HTTP level, before connect's adapter reads a byte of the body:
 * the declared size of the request, the compression it names and the deadline it sets, and (by
 * the caller's own check) who is calling. A refusal is written in the protocol the client speaks,
 * so Connect, gRPC and gRPC-Web clients all see a proper error code: Connect gets its JSON error
 * with an HTTP status, gRPC and gRPC-Web a trailers-only response carrying grpc-status. Bodies
 * that are compressed are bounded later, by connect's readMaxBytes, which inflates only up to the
 * limit.
 *
 * The adapter (rpcAdapter) is connect-node's, with one difference: a request that connect cannot
 * read — a body that does not inflate or parse, a GET message that is not base64, a server stream
 * without its one message — is the client's mistake and answered InvalidArgument (HTTP 400), where
 * connect would answer Internal or Unimplemented (HTTP 500/501), the codes of a server's failure.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError, createConnectRouter, createContextKey, createContextValues, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { createAsyncIterable, readAllBytes, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";

/** gRPC and gRPC-Web put a 5-byte prefix (flags, length) before each message. */
const ENVELOPE_PREFIX_BYTES = 5;

export type RpcRequest = IncomingMessage | Http2ServerRequest;
export type RpcResponse = ServerResponse | Http2ServerResponse;

/** ResourceExhausted when the request declares a body larger than one message may be. */
export function declaredSizeRefusal(req: RpcRequest, readMaxBytes: number): ConnectError | undefined {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (!(declared > readMaxBytes + ENVELOPE_PREFIX_BYTES)) return undefined;
  return new ConnectError(`request body of ${declared} bytes is larger than the limit of ${readMaxBytes}`, Code.ResourceExhausted);
}

/** Compressions the adapter inflates and answers with (connect-node's), besides "identity" (none). */
const compressions = [compressionGzip, compressionBrotli];
const SUPPORTED_COMPRESSIONS: readonly string[] = compressions.map((c) => c.name);

/** Where the request names its compression, by protocol: the query of a Connect GET, else a header. */
function requestedCompression(req: RpcRequest): { where: string; value: string } | undefined {
  const contentType = String(req.headers["content-type"] ?? "");
  if (req.method === "GET") {
    const value = new URL(req.url ?? "/", "http://localhost").searchParams.get("compression");
    return value === null ? undefined : { where: "the compression parameter", value };
  }
  const header = contentType.startsWith("application/grpc") ? "grpc-encoding" : contentType.startsWith("application/connect+") ? "connect-content-encoding" : "content-encoding";
  const value = req.headers[header];
  return value === undefined ? undefined : { where: header, value: String(value) };
}

/**
 * Unimplemented (HTTP 415, Unsupported Media Type, as RFC 9110 says for an unsupported content
 * coding) when the request's body is compressed with something the server cannot inflate — an
 * unknown name, an empty one, a list. The answer names the supported ones, as connect does.
 */
export function compressionRefusal(req: RpcRequest): ConnectError | undefined {
  const requested = requestedCompression(req);
  if (requested === undefined || requested.value === "identity" || SUPPORTED_COMPRESSIONS.includes(requested.value)) return undefined;
  const supported = SUPPORTED_COMPRESSIONS.join(",");
  return new ConnectError(`unsupported compression ${JSON.stringify(requested.value.slice(0, 100))} in ${requested.where}: supported are ${supported}`, Code.Unimplemented, { "accept-encoding": supported });
}

/** The shortest deadline a Connect client may set: below it no call can be answered in time. */
export const MIN_TIMEOUT_MS = 100;

/**
 * InvalidArgument when a Connect request's deadline (Connect-Timeout-Ms) is shorter than
 * MIN_TIMEOUT_MS: such a call is over before it is read, and connect would answer it
 * DeadlineExceeded (HTTP 504), a server's failure. Malformed values connect refuses itself (400).
 */
export function timeoutRefusal(req: RpcRequest): ConnectError | undefined {
  const value = req.headers["connect-timeout-ms"];
  if (typeof value !== "string" || !/^\d{1,10}$/.test(value) || Number(value) >= MIN_TIMEOUT_MS) return undefined;
  return new ConnectError(`connect-timeout-ms of ${value} is shorter than the least the server accepts, ${MIN_TIMEOUT_MS}`, Code.InvalidArgument);
}

/** Base64 as connect decodes it (standard or URL alphabet, padding optional, blanks skipped); one char past a group of 4 is never whole. */
const BASE64 = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2,3})?={0,2}$/;

/**
 * InvalidArgument when a Connect GET says its message is base64 (base64=1) and it is not: connect
 * would fail to decode it with an Internal error (HTTP 500) that does not say why.
 */
export function getMessageRefusal(req: RpcRequest): ConnectError | undefined {
  if (req.method !== "GET") return undefined;
  const query = new URL(req.url ?? "/", "http://localhost").searchParams;
  if (query.get("base64") !== "1" || BASE64.test((query.get("message") ?? "").replace(/\s/g, ""))) return undefined;
  return new ConnectError("the message parameter is not base64, though base64=1 says it is", Code.InvalidArgument);
}

/** Everything checked on the request line and headers alike on every RPC server: size, compression, deadline, a GET's message. */
export function headerRefusal(req: RpcRequest, readMaxBytes: number): ConnectError | undefined {
  return declaredSizeRefusal(req, readMaxBytes) ?? compressionRefusal(req) ?? timeoutRefusal(req) ?? getMessageRefusal(req);
}

/** The procedure a request path names, for example "PlaceOrder" of "/orderflow.v1.OrderService/PlaceOrder". */
export function procedureOf(req: RpcRequest): { service: string; method: string } | undefined {
  const match = /^\/([\w.]+)\/(\w+)$/.exec((req.url ?? "").split("?")[0] ?? "");
  return match === null ? undefined : { service: match[1] ?? "", method: match[2] ?? "" };
}

/**
 * HTTP statuses of the refusals above where they differ from Connect's mapping: the only
 * ResourceExhausted refused here is a body declared too large (413, Payload Too Large), the only
 * Unimplemented a compression the server does not have (415); the code in the body stays.
 */
const refusalStatus: Partial<Record<Code, number>> = { [Code.ResourceExhausted]: 413, [Code.Unimplemented]: 415 };

/**
 * Answers `req` with `err` without reading its body. Over HTTP/1.1 the connection is closed
 * afterwards, so that an unread body (perhaps gigabytes) is not drained to keep it alive.
 */
export function writeRpcError(req: RpcRequest, res: RpcResponse, err: ConnectError): void {
  const headers: Record<string, string> = {};
  err.metadata.forEach((value, name) => (headers[name] = value));
  if (req.httpVersionMajor === 1) headers["connection"] = "close";
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc")) {
    setTrailerStatus(new Headers(), err).forEach((value, name) => (headers[name] = value));
    headers["content-type"] = contentType.startsWith("application/grpc-web") ? "application/grpc-web+proto" : "application/grpc+proto";
    res.writeHead(200, headers);
    res.end();
    return;
  }
  const status = refusalStatus[err.code] ?? codeToHttpStatus(err.code);
  headers["content-type"] = "application/json";
  res.writeHead(status, headers);
  res.end(errorToJsonBytes(err, {}));
}

/** Codes connect gives a request it cannot read that mean a server's failure to a client. */
const serverSideCodes: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.Unimplemented]);

/** `err` (raised while reading a request) as the client's mistake: InvalidArgument in place of a server's code. */
export function asClientMistake(err: unknown): ConnectError {
  const connect = ConnectError.from(err);
  if (!serverSideCodes.has(connect.code)) return connect;
  return new ConnectError(connect.rawMessage, Code.InvalidArgument, connect.metadata, undefined, connect);
}

/** Per call: whether connect read and parsed the request (the interceptors run only then, for a unary call). */
const requestRead = createContextKey<{ done: boolean } | undefined>(undefined);

/** Yields a request stream's messages, a failure to read or parse one becoming the client's mistake. */
async function* readByClient<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw asClientMistake(err);
  }
}

/**
 * The first interceptor of every call: records that a unary request was read; for a streaming
 * one, turns failures to read its messages into InvalidArgument. For a server stream, `next`
 * resolves before the handler runs a line (the handler is a generator; connect first takes the
 * one request message), so what it throws is about the request too: none, or more than one.
 */
const requestMistakes: Interceptor = (next) => async (req) => {
  const progress = req.contextValues.get(requestRead);
  if (progress !== undefined) progress.done = true;
  if (!req.stream) return await next(req);
  const call = next({ ...req, message: readByClient(req.message) });
  return req.method.methodKind === "server_streaming" ? await call.catch((err: unknown) => Promise.reject(asClientMistake(err))) : await call;
};

/** A unary Connect answer of a server's code, rewritten as the client's mistake (InvalidArgument, 400). */
async function asClientMistakeResponse(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const isConnectJsonError = res.header?.get("content-type") === "application/json" && res.body !== undefined;
  if (!isConnectJsonError || res.body === undefined) return res;
  const err = asClientMistake(errorFromJsonBytes(await readAllBytes(res.body, Number.MAX_SAFE_INTEGER), undefined, new ConnectError("unreadable error", Code.Internal)));
  const body = errorToJsonBytes(err, {});
  const header = new Headers(res.header);
  err.metadata.forEach((value, name) => header.set(name, value));
  header.set("content-length", String(body.byteLength));
  return { ...res, status: codeToHttpStatus(err.code), header, body: createAsyncIterable([body]) };
}

/**
 * connect-node's adapter (same options and compressions, unknown paths answered 404), where a request connect
 * cannot read is answered InvalidArgument: a unary call that failed with a server's code before
 * its interceptors ran (so before the request was read and parsed), and a streaming call whose
 * messages fail to read (requestMistakes).
 */
export function rpcAdapter(options: ConnectNodeAdapterOptions, log: Logger): (req: RpcRequest, res: RpcResponse) => void {
  const router = createConnectRouter({ acceptCompression: compressions, ...options, interceptors: [requestMistakes, ...(options.interceptors ?? [])] });
  options.routes(router);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));
  return (req, res) => {
    const handler = handlers.get((req.url ?? "").split("?")[0] ?? "");
    if (handler === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const progress = { done: false };
    const values = (options.contextValues?.(req) ?? createContextValues()).set(requestRead, progress);
    handler(universalRequestFromNodeRequest(req, res, undefined, values))
      .then(async (answer) => (answer.status >= 500 && !progress.done ? await asClientMistakeResponse(answer) : answer))
      .then((answer) => universalResponseToNodeResponse(answer, res))
      .catch((err: unknown) => {
        // As connect's adapter: a call the client aborted is nobody's failure.
        if (ConnectError.from(err).code !== Code.Aborted) log.error({ rpc: handler.requestPath, err: messageOf(err) }, "writing an RPC's answer failed");
      });
  };
}
