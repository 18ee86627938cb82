/**
 * The bench's broker's request counters over JMX: the JMX agent is started inside the running
 * broker with `jcmd` (so only the bench's own broker has it, and infra/kafka/kafka.sh starts
 * brokers as before), and the counters are read with Kafka's own JmxTool from the broker's jars.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseRequestCounts } from "./summary.ts";

const run = promisify(execFile);

/** The folder of the local broker's jars, as infra/kafka/kafka.sh resolves them. */
export function kafkaLibs(root: string): string {
  const version = /^KAFKA_VERSION=(\S+)/m.exec(readFileSync(join(root, "infra", "kafka", "kafka.env"), "utf8"))?.[1];
  if (version === undefined) throw new Error("infra/kafka/kafka.env pins no KAFKA_VERSION");
  return join(process.env["ORDERFLOW_CACHE"] ?? join(homedir(), ".cache", "orderflow"), `kafka-${version}`, "libs");
}

/** A broker whose request counters can be read. */
export interface BrokerRequests {
  /** Requests handled so far, by request type (all API versions together). */
  counts(): Promise<Record<string, number>>;
}

/** Starts a JMX agent on 127.0.0.1:`port` inside the broker `pid`. */
export async function brokerRequests(root: string, pid: number, port: number): Promise<BrokerRequests> {
  await run("jcmd", [String(pid), "ManagementAgent.start", `jmxremote.port=${port}`, `jmxremote.rmi.port=${port}`, "jmxremote.host=127.0.0.1", "jmxremote.authenticate=false", "jmxremote.ssl=false"]);
  const classpath = `${kafkaLibs(root)}/*`;
  return {
    async counts() {
      const { stdout } = await run(
        "java",
        [
          "-cp",
          classpath,
          "org.apache.kafka.tools.JmxTool",
          "--jmx-url",
          `service:jmx:rmi:///jndi/rmi://127.0.0.1:${port}/jmxrmi`,
          "--object-name",
          "kafka.network:type=RequestMetrics,name=RequestsPerSec,*",
          "--attributes",
          "Count",
          "--one-time",
          "true",
          "--report-format",
          "csv",
        ],
        { maxBuffer: 1 << 22 },
      );
      return parseRequestCounts(stdout);
    },
  };
}
