/**
 * The mail sink keeps serving when a sender dies mid-session, and lists and serves what it stored
 * (also after a restart, and after a crash tore its index's last line).
 */
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTransport } from "nodemailer";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../../test/harness/wait.ts";
import { startMailSink, type MailSink, type StoredMail } from "./sink.ts";

let dir: string;
let sink: MailSink | undefined;

afterEach(async () => {
  await sink?.close();
  sink = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const send = (port: number, subject: string) =>
  createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true }).sendMail({ from: "a@orderflow.test", to: "b@example.com", subject, text: "hello", messageId: `<${subject}@orderflow.test>` });

/** A sender killed halfway through a message: the server is reading DATA when the reset comes. */
const dieMidMessage = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answers = "";
    socket.once("error", reject);
    socket.on("data", (chunk: Buffer) => {
      answers += chunk.toString("utf8");
      if (answers.startsWith("220") && !answers.includes("250")) socket.write("EHLO dying.sender\r\nMAIL FROM:<a@orderflow.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
      if (/^354/m.test(answers)) {
        socket.removeAllListeners("data");
        // Far more than the server reads at once: the reset finds data it has not read yet.
        socket.write(`Subject: half\r\n\r\n${"x".repeat(76)}\r\n`.repeat(4000), () => {
          socket.resetAndDestroy();
          resolve();
        });
      }
    });
  });

const listing = async (port: number) => ((await (await fetch(`http://127.0.0.1:${port}/messages`)).json()) as { messages: StoredMail[] }).messages;

describe("mail sink", () => {
  it("survives a sender that resets its connection mid-session, and reports it", async () => {
    dir = mkdtempSync(join(tmpdir(), "mailsink-"));
    const errors: Error[] = [];
    sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0, onConnectionError: (err) => errors.push(err) });
    const { smtpPort } = sink;
    await dieMidMessage(smtpPort);
    await waitFor(() => errors.length > 0, { timeoutMs: 4000, what: "the reset to be reported" });
    expect(errors[0]?.message).toMatch(/ECONNRESET|EPIPE/);
    await send(smtpPort, "after-the-reset");
    const messages = await listing(sink.httpPort);
    expect(messages.map((m) => m.subject)).toEqual(["after-the-reset"]);
    expect(messages[0]?.messageId).toBe("<after-the-reset@orderflow.test>");
  });

  it("lists the messages a previous run stored, then the new ones", async () => {
    dir = mkdtempSync(join(tmpdir(), "mailsink-"));
    sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    await send(sink.smtpPort, "first-run");
    await sink.close();
    sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    await send(sink.smtpPort, "second-run");
    expect((await listing(sink.httpPort)).map((m) => m.subject)).toEqual(["first-run", "second-run"]);
  });

  it("serves each message's bytes after a restart, and cuts off an index line a crash tore", async () => {
    dir = mkdtempSync(join(tmpdir(), "mailsink-"));
    sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    await send(sink.smtpPort, "one");
    await send(sink.smtpPort, "two");
    await sink.close();
    appendFileSync(join(dir, "messages.jsonl"), '[9999,{"id":"torn');
    sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    await send(sink.smtpPort, "three");
    const messages = await listing(sink.httpPort);
    expect(messages.map((m) => m.subject)).toEqual(["one", "two", "three"]);
    for (const message of messages) {
      const raw = await (await fetch(`http://127.0.0.1:${sink.httpPort}/messages/${message.id}`)).text();
      expect(raw).toMatch(new RegExp(`^Subject: ${message.subject}$`, "m"));
      expect(Buffer.byteLength(raw)).toBe(message.sizeBytes);
    }
    expect((await fetch(`http://127.0.0.1:${sink.httpPort}/messages/00000000-0000-0000-0000-000000000000`)).status).toBe(404);
  });
});
