/**
 * The notifier's SMTP transport pools its connections (renewed after maxMessages), recovers from a
 * restart of the mail sink, fails clearly when it cannot connect, and writes plain emails raw.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { listMail, startMailSink } from "../mailsink/sink.ts";
import { createMailer, mailOf, openSocket } from "./smtp.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An SMTP server that counts the connections it was opened and the messages it took. */
async function countingServer() {
  const counts = { connections: 0, messages: 0 };
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onConnect(_session, callback) {
      counts.connections += 1;
      callback();
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on("end", () => {
        counts.messages += 1;
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => smtp.close(() => resolve())));
  return { counts, port: (smtp.server.address() as AddressInfo).port };
}

describe("SMTP transport", () => {
  it("sends many messages over a few pooled connections", async () => {
    const { counts, port } = await countingServer();
    const mailer = createMailer(`smtp://127.0.0.1:${port}`);
    closers.push(() => Promise.resolve(mailer.close()));
    for (let i = 0; i < 20; i += 1) await mailer.sendMail({ from: "a@orderflow.test", to: "b@example.com", subject: `m${i}`, text: "x" });
    expect(counts.messages).toBe(20);
    expect(counts.connections).toBeLessThanOrEqual(3);
  });

  it("renews a connection after it carried maxMessages", async () => {
    const { counts, port } = await countingServer();
    const mailer = createMailer(`smtp://127.0.0.1:${port}`, { maxConnections: 1, maxMessages: 5 });
    closers.push(() => Promise.resolve(mailer.close()));
    for (let i = 0; i < 12; i += 1) await mailer.sendMail({ from: "a@orderflow.test", to: "b@example.com", subject: `m${i}`, text: "x" });
    expect(counts.messages).toBe(12);
    expect(counts.connections).toBe(3);
  });

  it("sends again after the mail sink restarted under its pooled connections", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mailsink-"));
    closers.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const first = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    const mailer = createMailer(`smtp://127.0.0.1:${first.smtpPort}`);
    closers.push(() => Promise.resolve(mailer.close()));
    await mailer.sendMail({ from: "a@orderflow.test", to: "b@example.com", subject: "before", text: "x" });
    await first.close();
    const second = await startMailSink({ dir, smtpPort: first.smtpPort, httpPort: 0 });
    closers.push(() => second.close());
    await mailer.sendMail({ from: "a@orderflow.test", to: "b@example.com", subject: "after", text: "x" });
    expect(listMail(dir).map((m) => m.subject)).toEqual(["before", "after"]);
  });

  it("refuses a URL that is not SMTP", () => {
    expect(() => createMailer("http://127.0.0.1:25")).toThrow(/smtp:\/\/ or smtps:\/\//);
  });

  it("reports a refused connection", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(openSocket("127.0.0.1", port)).rejects.toThrow(/ECONNREFUSED/);
    const mailer = createMailer(`smtp://127.0.0.1:${port}`);
    closers.push(() => Promise.resolve(mailer.close()));
    await expect(mailer.sendMail({ from: "a@orderflow.test", to: "b@example.com", subject: "x", text: "x" })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("plain emails", () => {
  const email = { from: "orders@orderflow.test", to: "ada@example.com", subject: "Order 1234 confirmed", text: "Thank you!\nTotal: USD 1.00.\n", messageId: "<m-1@orderflow.test>", headers: { "X-Orderflow-Notification": "o-1:ORDER_CONFIRMED" } };
  const at = new Date("2026-12-03T09:00:00Z");

  it("writes a plain ASCII email as one raw 7bit message with its envelope", () => {
    expect(mailOf(email, at)).toEqual({
      envelope: { from: "orders@orderflow.test", to: ["ada@example.com"] },
      raw:
        "From: orders@orderflow.test\r\nTo: ada@example.com\r\nSubject: Order 1234 confirmed\r\nMessage-ID: <m-1@orderflow.test>\r\n" +
        "X-Orderflow-Notification: o-1:ORDER_CONFIRMED\r\nDate: Thu, 03 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nThank you!\r\nTotal: USD 1.00.\r\n",
    });
  });

  it.each([
    ["non-ASCII text", { text: "Grund: Zahlung abgelehnt – Karte gesperrt\n" }],
    ["a line break in a header", { subject: "Order\r\nBcc: someone@example.com" }],
    ["a body line over 998 octets", { text: `${"x".repeat(999)}\n` }],
  ])("leaves an email with %s to nodemailer's composer", (_what, change) => {
    const options = mailOf({ ...email, ...change }, at);
    expect(options.raw).toBeUndefined();
    expect(options).toMatchObject({ from: email.from, to: email.to, messageId: email.messageId, headers: email.headers, ...change });
  });

  it("delivers both kinds to the mail sink with their Message-ID and notification header", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mailsink-"));
    closers.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
    closers.push(() => sink.close());
    const mailer = createMailer(`smtp://127.0.0.1:${sink.smtpPort}`);
    closers.push(() => Promise.resolve(mailer.close()));
    await mailer.sendMail(mailOf(email, at));
    await mailer.sendMail(mailOf({ ...email, messageId: "<m-2@orderflow.test>", text: "Grund: abgelehnt – gesperrt\n" }, at));
    const stored = listMail(dir);
    expect(stored.map((m) => [m.subject, m.messageId, m.notificationId, m.to])).toEqual([
      [email.subject, "<m-1@orderflow.test>", "o-1:ORDER_CONFIRMED", ["ada@example.com"]],
      [email.subject, "<m-2@orderflow.test>", "o-1:ORDER_CONFIRMED", ["ada@example.com"]],
    ]);
    const second = await (await fetch(`http://127.0.0.1:${sink.httpPort}/messages/${stored[1]?.id ?? ""}`)).text();
    expect(second).toMatch(/Content-Transfer-Encoding: quoted-printable/);
  });
});
