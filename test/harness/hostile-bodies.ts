/**
 * Hostile request bodies for the RPC servers' limits: compression bombs (small on the wire, huge
 * once inflated), raw Connect unary calls that carry them, a request whose body never finishes (to
 * see whether the server answers before reading it), and the peak RSS growth of this process while
 * a call runs (the servers under test run in-process).
 */
import { request } from "node:http";
import { constants, createBrotliCompress, gzipSync } from "node:zlib";

const MiB = 1024 * 1024;

/** Zeros gzipped: about 1 KiB on the wire per MiB inflated (gzip's ratio tops out near 1000:1). */
export function gzipBomb(inflatedMiB: number): Buffer {
  return gzipSync(Buffer.alloc(inflatedMiB * MiB), { level: 9 });
}

/** Zeros compressed with brotli, streamed so that the inflated size is never held: 1 GiB → under 2 KiB. */
export async function brotliBomb(inflatedMiB: number): Promise<Buffer> {
  const zeros = Buffer.alloc(MiB);
  const compressor = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
  const chunks: Buffer[] = [];
  compressor.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => compressor.once("end", resolve).once("error", reject));
  for (let i = 0; i < inflatedMiB; i += 1) {
    if (!compressor.write(zeros)) await new Promise((resolve) => compressor.once("drain", resolve));
  }
  compressor.end();
  await ended;
  return Buffer.concat(chunks);
}

/** What a Connect unary call answered: the HTTP status and the error code of its JSON body, if any. */
export interface ConnectAnswer {
  readonly status: number;
  readonly code?: string;
  readonly message?: string;
}

/** POSTs `body` as a Connect unary call (binary proto) to `url` with `encoding` as its Content-Encoding. */
export async function connectUnary(url: string, body: Buffer, encoding: string, headers: Record<string, string> = {}): Promise<ConnectAnswer> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/proto", "connect-protocol-version": "1", "content-encoding": encoding, ...headers },
    body,
  });
  const text = await res.text();
  if (res.headers.get("content-type")?.startsWith("application/json") !== true) return { status: res.status };
  const error = JSON.parse(text) as { code?: string; message?: string };
  return { status: res.status, ...(error.code === undefined ? {} : { code: error.code }), ...(error.message === undefined ? {} : { message: error.message }) };
}

/**
 * Sends the headers and the first `firstBytes` of a body to `url` and never the rest, and resolves
 * with the answer the server gives meanwhile; rejects after `timeoutMs` without one, which means
 * the server waited for the body it would read.
 */
export function answerBeforeBody(url: string, headers: Record<string, string>, firstBytes: Buffer, timeoutMs = 5_000): Promise<ConnectAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms while the body was still being sent`));
    }, timeoutMs);
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.once("end", () => {
        clearTimeout(timer);
        req.destroy();
        const text = Buffer.concat(chunks).toString("utf8");
        const error = res.headers["content-type"]?.startsWith("application/json") === true ? (JSON.parse(text) as { code?: string }) : {};
        resolve({ status: res.statusCode ?? 0, ...(error.code === undefined ? {} : { code: error.code }) });
      });
    });
    req.flushHeaders();
    req.write(firstBytes);
  });
}

/**
 * Runs `call` while sampling this process's RSS every few milliseconds, and resolves with its
 * result and the largest growth over the RSS before it, in MiB.
 */
export async function withPeakRssGrowth<T>(call: () => Promise<T>): Promise<{ result: T; growthMiB: number }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2);
  try {
    const result = await call();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growthMiB: (peak - before) / MiB };
  } finally {
    clearInterval(sampler);
  }
}
