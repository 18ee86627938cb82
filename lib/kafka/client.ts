/**
 * Kafka clients built from the typed config: one `Kafka` per process, producers with the
 * guarantee block (idempotent, acks=all), consumers that read only committed data and store an
 * offset only after its record was handled. Client logs go to our logger.
 */
import { createRequire } from "node:module";
import { KafkaJS } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

/**
 * confluent-kafka-javascript 1.10 turns librdkafka's GROUP_COORDINATOR_NOT_AVAILABLE into
 * `new KafkaJSGroupCoordinatorNotAvailableError(...)`, a class its error module does not define:
 * the TypeError is thrown inside the client's callback, so the caller's promise never settles and
 * the process dies of an unhandled rejection. Seen when a cluster node holding a group coordinator
 * was killed during sendOffsets. Until the client defines it, the name points to the class it meant.
 */
const clientErrors = createRequire(import.meta.url)("@confluentinc/kafka-javascript/lib/kafkajs/_error.js") as Record<string, unknown>;
clientErrors["KafkaJSGroupCoordinatorNotAvailableError"] ??= clientErrors["KafkaJSGroupCoordinatorNotFound"];

export type Kafka = KafkaJS.Kafka;
export type Producer = KafkaJS.Producer;
export type Consumer = KafkaJS.Consumer;
export type Admin = KafkaJS.Admin;

/** Routes the client's own log lines into pino. */
function clientLogger(log: Logger): KafkaJS.Logger {
  const child = log.child({ component: "kafka-client" });
  let level = KafkaJS.logLevel.WARN;
  const at = (threshold: KafkaJS.logLevel, write: (obj: object, msg: string) => void) =>
    (message: string, extra?: object) => {
      if (level >= threshold) write(extra ?? {}, message);
    };
  return {
    info: at(KafkaJS.logLevel.INFO, (o, m) => child.info(o, m)),
    warn: at(KafkaJS.logLevel.WARN, (o, m) => child.warn(o, m)),
    error: at(KafkaJS.logLevel.ERROR, (o, m) => child.error(o, m)),
    debug: at(KafkaJS.logLevel.DEBUG, (o, m) => child.debug(o, m)),
    namespace: () => clientLogger(log),
    setLogLevel: (next: KafkaJS.logLevel) => {
      level = next;
    },
  };
}

/** The process's Kafka entry point. */
export function createKafka(config: Config, log: Logger): Kafka {
  return new KafkaJS.Kafka({
    // Connection security and the like reach every client made from it, the admin client included.
    ...config.kafka.common,
    kafkaJS: {
      brokers: config.kafka.brokers.split(",").map((broker) => broker.trim()),
      clientId: config.kafka.clientId,
      logger: clientLogger(log),
      logLevel: KafkaJS.logLevel.WARN,
    },
  });
}

/** An idempotent producer (acks=all); connect() it before use. */
export function createProducer(kafka: Kafka, config: Config, extra: Record<string, string | number | boolean> = {}): Producer {
  return kafka.producer({
    ...config.kafka.producer,
    "message.timeout.ms": config.kafka.deliveryTimeoutMs,
    ...extra,
  });
}

/** A consumer of `groupId`; offsets are stored by the client only after our handler returns. */
export function createConsumer(
  kafka: Kafka,
  config: Config,
  groupId: string,
  extra: Record<string, unknown> = {},
): Consumer {
  return kafka.consumer({ ...config.kafka.consumer, "group.id": groupId, ...extra });
}

/** The actual name of a catalog topic under the configured prefix. */
export function topicName(config: Pick<Config, "topicPrefix">, base: string): string {
  return `${config.topicPrefix}${base}`;
}

/** An admin client that may read committed offsets, and the consumer it is made from. */
export interface GroupAdmin {
  readonly admin: Admin;
  close(): Promise<void>;
}

/**
 * An admin client made from a consumer that has a group id (`holderGroup`; it never joins or
 * commits), for reading committed offsets (fetchOffsets) — never `kafka.admin()` for that. In
 * librdkafka 2.15.1 a committed-offsets request answered with NOT_COORDINATOR or
 * COORDINATOR_NOT_AVAILABLE tells the client's own consumer-group handle to look its coordinator up
 * again; a plain admin client has no such handle (a NULL pointer) and the process dies of SIGSEGV
 * on librdkafka's thread. Brokers answer that way while their group coordinators load: a freshly
 * formatted broker, a restart, a coordinator moving to another node. Over a consumer's handle the
 * same answer rejects the request instead. `close` closes both clients.
 */
export async function openGroupAdmin(kafka: Kafka, config: Config, holderGroup: string): Promise<GroupAdmin> {
  const holder = createConsumer(kafka, config, holderGroup, { "enable.auto.commit": false });
  await holder.connect();
  const admin = holder.dependentAdmin();
  try {
    await admin.connect();
  } catch (err) {
    await holder.disconnect();
    throw err;
  }
  return {
    admin,
    async close() {
      try {
        await admin.disconnect();
      } finally {
        await holder.disconnect();
      }
    },
  };
}
