/** Entry of the local mail sink: SMTP on MAILSINK_SMTP_PORT (2525), listing on MAILSINK_HTTP_PORT (8025). */
import { integer } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { messageOf } from "../../lib/errors.ts";
import { stopOnSignals } from "../../lib/shutdown.ts";
import { startMailSink } from "./sink.ts";

const env = process.env;
const log = createLogger("mailsink", env["LOG_LEVEL"] ?? "info");
startMailSink({
  dir: env["MAILSINK_DIR"] ?? ".run/mail",
  smtpPort: integer(env, "MAILSINK_SMTP_PORT", 2525, 0),
  httpPort: integer(env, "MAILSINK_HTTP_PORT", 8025, 0),
  host: env["MAILSINK_HOST"] ?? "127.0.0.1",
  onConnectionError: (err) => log.warn({ err: messageOf(err) }, "SMTP connection failed"),
}).then(
  (sink) => {
    log.info({ smtpPort: sink.smtpPort, httpPort: sink.httpPort }, "ready");
    stopOnSignals(() => sink.close(), log);
  },
  (err: unknown) => {
    log.fatal({ err: messageOf(err) }, "could not start");
    process.exit(1);
  },
);
