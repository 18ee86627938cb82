/**
 * A real SMTP server for local use and tests: accepts every message on loopback, stores each as an
 * .eml file, and lists them over HTTP (GET /messages, GET /messages/{id}). Nothing is relayed.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
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

function header(raw: string, name: string): string {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? "";
  const match = new RegExp(`^${name}:\\s*(.*(?:\\r?\\n[ \\t].*)*)`, "im").exec(head);
  return (match?.[1] ?? "").replace(/\r?\n[ \t]+/g, " ").trim();
}

/** Reads the stored messages from disk, oldest first. */
export function listMail(dir: string): StoredMail[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")) as StoredMail);
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

/**
 * Starts the SMTP listener and the HTTP listing; ports 0 pick free ones. The listing is kept in
 * memory (read from `dir` at start), so listing many messages does not read every file again.
 */
export async function startMailSink(options: MailSinkOptions): Promise<MailSink> {
  const host = options.host ?? "127.0.0.1";
  mkdirSync(options.dir, { recursive: true });
  const stored = listMail(options.dir);
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    size: 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks);
        const id = uuidv7();
        const text = raw.toString("utf8");
        const meta: StoredMail = {
          id,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: header(text, "Subject"),
          receivedAt: new Date().toISOString(),
          sizeBytes: raw.length,
          ...(header(text, NOTIFICATION_HEADER) === "" ? {} : { notificationId: header(text, NOTIFICATION_HEADER) }),
          ...(header(text, "Message-ID") === "" ? {} : { messageId: header(text, "Message-ID") }),
        };
        writeFileSync(join(options.dir, `${id}.eml`), raw);
        writeFileSync(join(options.dir, `${id}.json`), JSON.stringify(meta));
        stored.push(meta);
        callback(null, `stored as ${id}`);
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
    if (parts[0] === "messages" && /^[0-9a-f-]{36}$/.test(id)) {
      try {
        const raw = readFileSync(join(options.dir, `${id}.eml`));
        res.writeHead(200, { "content-type": "message/rfc822" });
        res.end(raw);
      } catch {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "no such message" }));
      }
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
    },
  };
}
