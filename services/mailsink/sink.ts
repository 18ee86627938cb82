/**
 * A real SMTP server for local use and tests: accepts every message on loopback, stores it, and
 * lists what it stored over HTTP (GET /messages, GET /messages/{id}). Nothing is relayed.
 *
 * Cheap per message, as the benchmark counts its CPU: messages are appended to one data file
 * (messages.raw) and described by one line each in an index (messages.jsonl: the message's offset
 * in the data file and its listing entry), both through append streams whose queued writes leave
 * together — not two files created per message. A message is acknowledged (250) once its index
 * line is written, after its bytes; a crash before that leaves bytes no line points at, never a
 * line without its bytes. The listing is kept in memory (read from the index at start).
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, statSync, truncateSync, type WriteStream } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { v7 as uuidv7 } from "uuid";
import { NOTIFICATION_HEADER } from "../notification/templates.ts";

/** What the listing says about one stored message. */
export interface StoredMail {
  readonly id: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly subject: string;
  readonly receivedAt: string;
  readonly sizeBytes: number;
  /** The X-Orderflow-Notification header: which notification this email carries out. */
  readonly notificationId?: string;
  /** The Message-ID header: a resend of the same message carries the same one. */
  readonly messageId?: string;
}

const DATA_FILE = "messages.raw";
const INDEX_FILE = "messages.jsonl";

/** One index line: where the message's bytes start in the data file, and its listing entry. */
type IndexEntry = [offset: number, mail: StoredMail];

/** The headers the listing shows, read from the message's head in one pass (folded lines joined). */
function listedHeaders(raw: Buffer): { subject: string; notificationId: string; messageId: string } {
  let end = raw.indexOf("\r\n\r\n");
  if (end < 0) end = raw.indexOf("\n\n");
  const head = raw.toString("utf8", 0, end < 0 ? raw.length : end).replace(/\r?\n[ \t]+/g, " ");
  const found = { subject: "", notificationId: "", messageId: "" };
  const notificationHeader = NOTIFICATION_HEADER.toLowerCase();
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name === "subject") found.subject = line.slice(colon + 1).trim();
    else if (name === notificationHeader) found.notificationId = line.slice(colon + 1).trim();
    else if (name === "message-id") found.messageId = line.slice(colon + 1).trim();
  }
  return found;
}

/**
 * Reads the index's complete lines; a torn last line (a crash mid-write) is cut off, so that the
 * next line appended starts on a line of its own.
 */
function readIndex(dir: string): IndexEntry[] {
  const path = join(dir, INDEX_FILE);
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const complete = text.lastIndexOf("\n") + 1;
  if (complete < text.length) truncateSync(path, Buffer.byteLength(text.slice(0, complete)));
  return text
    .slice(0, complete)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as IndexEntry);
}

/** Reads the stored messages' listing from disk, oldest first. */
export function listMail(dir: string): StoredMail[] {
  return readIndex(dir).map(([, mail]) => mail);
}

export interface MailSink {
  readonly smtpPort: number;
  readonly httpPort: number;
  close(): Promise<void>;
}

export interface MailSinkOptions {
  readonly dir: string;
  readonly smtpPort: number;
  readonly httpPort: number;
  readonly host?: string;
  /** A client connection failed (a sender reset it, say); the sink carries on. */
  readonly onConnectionError?: (err: Error) => void;
}

/** Appends to `path`; resolves once the bytes are written. */
function appender(path: string): { stream: WriteStream; append(bytes: Buffer | string): Promise<void> } {
  const stream = createWriteStream(path, { flags: "a" });
  return {
    stream,
    append: (bytes) => new Promise((resolve, reject) => stream.write(bytes, (err) => (err ? reject(err) : resolve()))),
  };
}

/**
 * Starts the SMTP listener and the HTTP listing; ports 0 pick free ones. Senders may keep their
 * connections open for many messages (a pool); on close they are told to go (421) within a second.
 */
export async function startMailSink(options: MailSinkOptions): Promise<MailSink> {
  const host = options.host ?? "127.0.0.1";
  mkdirSync(options.dir, { recursive: true });
  const dataPath = join(options.dir, DATA_FILE);
  const entries = readIndex(options.dir);
  const stored = entries.map(([, mail]) => mail);
  /** Where each message's bytes are in the data file. */
  const places = new Map(entries.map(([offset, mail]) => [mail.id, { offset, size: mail.sizeBytes }]));
  let dataEnd = existsSync(dataPath) ? statSync(dataPath).size : 0;
  const data = appender(dataPath);
  const index = appender(join(options.dir, INDEX_FILE));
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    disableReverseLookup: true,
    closeTimeout: 1000,
    logger: false,
    size: 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks);
        const id = uuidv7();
        const { subject, notificationId, messageId } = listedHeaders(raw);
        const mail: StoredMail = {
          id,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          subject,
          receivedAt: new Date().toISOString(),
          sizeBytes: raw.length,
          ...(notificationId === "" ? {} : { notificationId }),
          ...(messageId === "" ? {} : { messageId }),
        };
        const offset = dataEnd;
        dataEnd += raw.length;
        data
          .append(raw)
          .then(() => index.append(`${JSON.stringify([offset, mail] satisfies IndexEntry)}\n`))
          .then(
            () => {
              stored.push(mail);
              places.set(id, { offset, size: raw.length });
              callback(null, `stored as ${id}`);
            },
            (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
          );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.server.once("error", reject);
    smtp.listen(options.smtpPort, host, resolve);
  });
  // Without a listener, a connection error (a sender killed mid-session) would end the process.
  smtp.on("error", (err: Error) => options.onConnectionError?.(err));
  const http: HttpServer = createHttpServer((req, res) => {
    const parts = (req.url ?? "/").split("?")[0]?.split("/").filter(Boolean) ?? [];
    if (parts[0] === "messages" && parts.length === 1) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ messages: stored }));
      return;
    }
    const id = parts[1] ?? "";
    const place = parts[0] === "messages" && parts.length === 2 ? places.get(id) : undefined;
    if (place !== undefined) {
      res.writeHead(200, { "content-type": "message/rfc822", "content-length": place.size });
      if (place.size === 0) res.end();
      else createReadStream(dataPath, { start: place.offset, end: place.offset + place.size - 1 }).pipe(res);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not found" }));
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.httpPort, host, resolve);
  });
  return {
    smtpPort: (smtp.server.address() as AddressInfo).port,
    httpPort: (http.address() as AddressInfo).port,
    async close() {
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await Promise.all([data.stream, index.stream].map((stream) => new Promise<void>((resolve) => stream.end(resolve))));
    },
  };
}
