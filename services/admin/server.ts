/**
 * The admin process's HTTP side, on one port: `orderflow.v1.AdminService` over Connect, gRPC-Web
 * and gRPC, and the live dashboard under /dashboard (GET / redirects there). gRPC needs HTTP/2, and
 * Node serves cleartext HTTP/2 (h2c, prior knowledge — what `buf curl --http2-prior-knowledge` and
 * gRPC clients send) only from a server of its own; so the listener looks at each connection's
 * first bytes and hands it to the HTTP/2 server when they are the HTTP/2 preface, to the HTTP/1.1
 * server (browsers, Connect and gRPC-Web) otherwise. Every RPC, over either, is checked on its
 * headers before connect's adapter reads its body: the bearer token first (a wrong one is refused
 * with nothing read, let alone decompressed), then the declared size, the compression and the
 * deadline (lib/rpc-guard.ts); the adapter bounds the message on the wire and after
 * decompression (readMaxBytes), and answers a request it cannot read as the client's mistake.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { messageOf } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { headerRefusal, rpcAdapter, writeRpcError } from "../../lib/rpc-guard.ts";
import { tokenRefusal } from "./auth.ts";
import type { Dashboard } from "./dashboard/dashboard.ts";

/** How every HTTP/2 connection begins (RFC 9113 §3.4); "PRI " tells it apart from any HTTP/1.1 method. */
const HTTP2_PREFACE_START = "PRI ";

/** What the admin server serves, and where. */
export interface AdminServerOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  /** ADMIN_TOKEN: every RPC must carry it as a bearer token; unset or empty, every RPC is refused. */
  readonly token: string | undefined;
  /** Largest request message, on the wire and after decompression. */
  readonly readMaxBytes: number;
  readonly dashboard: Pick<Dashboard, "handle">;
  readonly log: Logger;
  /** 0 picks a free port. */
  readonly port: number;
  readonly host: string;
}

export interface AdminServer {
  /** The port bound (useful with port 0). */
  readonly port: number;
  /** Stops listening and closes every open connection. */
  close(): Promise<void>;
}

/** Starts the admin server; resolves once it listens. */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { dashboard, log } = options;
  const adapter = rpcAdapter({ routes: options.routes, interceptors: options.interceptors, readMaxBytes: options.readMaxBytes }, log);
  const connect = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    const refusal = tokenRefusal(options.token, req.headers.authorization) ?? headerRefusal(req, options.readMaxBytes);
    if (refusal === undefined) adapter(req, res);
    else writeRpcError(req, res, refusal);
  };
  const http1 = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "GET" && new URL(req.url ?? "/", "http://localhost").pathname === "/") {
      res.writeHead(302, { location: "/dashboard" });
      res.end();
      return;
    }
    dashboard.handle(req, res).then(
      (handled) => {
        if (!handled) connect(req, res);
      },
      (err: unknown) => {
        log.error({ url: req.url, err: messageOf(err) }, "dashboard request failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "internal error" }));
      },
    );
  });
  const http2 = createHttp2Server(connect);
  const sockets = new Set<Socket>();
  const listener = createNetServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      (chunk.subarray(0, HTTP2_PREFACE_START.length).toString("latin1") === HTTP2_PREFACE_START ? http2 : http1).emit("connection", socket);
      process.nextTick(() => socket.resume());
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host, resolve);
  });
  return {
    port: (listener.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        listener.close((err) => (err ? reject(err) : resolve()));
        for (const socket of sockets) socket.destroy();
      }),
  };
}
