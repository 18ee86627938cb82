import { createServer, type AddressInfo, type Socket } from "node:net";
import { Registry } from "prom-client";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { createNotificationMetrics, smtpCheck } from "./observability.ts";
import { createMailer } from "./smtp.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const mailerFor = (port: number) => {
  const mailer = createMailer(`smtp://127.0.0.1:${port}`);
  closers.push(() => Promise.resolve(mailer.close()));
  return mailer;
};

describe("smtp readiness check", () => {
  it("is ok when the server greets, degraded when nobody listens", async () => {
    const smtp = new SMTPServer({ authOptional: true, disabledCommands: ["STARTTLS"], logger: false });
    await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise((resolve) => smtp.close(() => resolve())));
    const up = smtpCheck(mailerFor((smtp.server.address() as AddressInfo).port));
    expect(up.name).toBe("smtp");
    expect(await up.check()).toEqual({ status: "ok", detail: { reachable: true } });

    const free = createServer();
    await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
    const { port } = free.address() as AddressInfo;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    expect(await smtpCheck(mailerFor(port)).check()).toMatchObject({ status: "degraded", detail: { reachable: false, error: expect.stringMatching(/ECONNREFUSED/) as string } });
  });

  it("gives up on a server that does not answer within its bound", async () => {
    // Accepts the connection and never greets.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    closers.push(
      () =>
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const started = Date.now();
    const result = await smtpCheck(mailerFor((silent.address() as AddressInfo).port), 200).check();
    expect(result).toEqual({ status: "degraded", detail: { reachable: false, error: "no answer within 200 ms" } });
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe("notification metrics", () => {
  it("counts emails by template and result", async () => {
    const registry = new Registry();
    const { emails } = createNotificationMetrics(registry);
    emails.inc({ template: "ORDER_CONFIRMED", result: "sent" });
    expect(await registry.metrics()).toContain('orderflow_emails_total{template="ORDER_CONFIRMED",result="sent"} 1');
  });
});
