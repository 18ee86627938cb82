/**
 * CPU time and memory of processes from /proc: user + system CPU seconds so far, and the resident
 * set's high-water mark (VmHWM, the peak RSS over the process's life).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** One reading of a process. */
export interface ProcessSample {
  readonly cpuSeconds: number;
  readonly peakRssMb: number;
  readonly rssMb: number;
}

/** Reads `pid` now; undefined when it is gone. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at state, field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { cpuSeconds: (utime + stime) / ticksPerSecond, peakRssMb: Math.round(kb("VmHWM") / 102.4) / 10, rssMb: Math.round(kb("VmRSS") / 102.4) / 10 };
  } catch {
    return undefined;
  }
}

/** CPU seconds each process spent between two readings, and its peak RSS at the second. */
export function usageBetween(before: Readonly<Record<string, ProcessSample | undefined>>, after: Readonly<Record<string, ProcessSample | undefined>>) {
  return Object.fromEntries(
    Object.entries(after).flatMap(([name, end]) => {
      const start = before[name];
      if (end === undefined) return [];
      return [[name, { cpuSeconds: Math.round((end.cpuSeconds - (start?.cpuSeconds ?? 0)) * 100) / 100, peakRssMb: end.peakRssMb }]];
    }),
  );
}
