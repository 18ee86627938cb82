/**
 * What an RPC server checks at the HTTP level, before connect's adapter reads a byte of the body:
 * the declared size of the request, and (by the caller's own check) who is calling. A refusal is
 * written in the protocol the client speaks, so Connect, gRPC and gRPC-Web clients all see a
 * proper error code: Connect gets its JSON error with an HTTP status, gRPC and gRPC-Web a
 * trailers-only response carrying grpc-status. Bodies that are compressed are bounded later, by
 * connect's readMaxBytes, which inflates only up to the limit.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

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

/** The procedure a request path names, for example "PlaceOrder" of "/orderflow.v1.OrderService/PlaceOrder". */
export function procedureOf(req: RpcRequest): { service: string; method: string } | undefined {
  const match = /^\/([\w.]+)\/(\w+)$/.exec((req.url ?? "").split("?")[0] ?? "");
  return match === null ? undefined : { service: match[1] ?? "", method: match[2] ?? "" };
}

/**
 * Answers `req` with `err` without reading its body. Over HTTP/1.1 the connection is closed
 * afterwards, so that an unread body (perhaps gigabytes) is not drained to keep it alive.
 * The only ResourceExhausted refused here is a body declared too large: Connect clients get it as
 * 413 (Payload Too Large), the code in the body staying ResourceExhausted.
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
  const status = err.code === Code.ResourceExhausted ? 413 : codeToHttpStatus(err.code);
  headers["content-type"] = "application/json";
  res.writeHead(status, headers);
  res.end(errorToJsonBytes(err, {}));
}
