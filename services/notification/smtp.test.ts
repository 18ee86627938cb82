/** The notifier's SMTP transport pools its connections, and fails clearly when it cannot connect. */
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { createMailer, openSocket } from "./smtp.ts";

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
