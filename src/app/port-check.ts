/**
 * Checks that the ports a command will listen on are free before it writes anything: a busy port
 * found half-way through `opencmg up` would leave a data folder behind (or half changed) and say
 * only EADDRINUSE. Each port names the option that changes it.
 */
import { createServer } from "node:net";
import { ValidationError } from "../errors.ts";

export interface PlannedPort {
  host: string;
  port: number;
  /** What listens there, for people: "admin API", "CMG instance 0 (clients)". */
  what: string;
  /** The command-line option that changes it: "--api-port". */
  flag: string;
  /** How the option gives this port when it is not the option's value itself: "--mp-port + 1". */
  derived?: string;
}

/** Why a port cannot be bound: someone else listens there, or it needs privileges this process lacks. */
export type PortProblem = "in use" | "needs privileges";

/** Tries to bind `host:port` and lets go at once; undefined when it could be bound. */
export function probePort(host: string, port: number): Promise<PortProblem | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") resolve("in use");
      else if (e.code === "EACCES") resolve("needs privileges");
      else reject(e);
    });
    // exclusive: a port shared through cluster would look free to a second listener here.
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/**
 * Throws one ValidationError naming every busy port and the option to change it (field: the first
 * busy port's option, camel-cased as elsewhere: "apiPort").
 *
 * @example
 * await checkPortsFree([{ host: "127.0.0.1", port: 8240, what: "admin API", flag: "--api-port" }]);
 * // ValidationError: apiPort: port 8240 on 127.0.0.1 (admin API) is in use: choose another with --api-port
 */
export async function checkPortsFree(ports: readonly PlannedPort[]): Promise<void> {
  const lines: string[] = [];
  let field: string | undefined;
  const seen = new Map<string, PlannedPort>();
  for (const p of ports) {
    const key = `${p.host}:${p.port}`;
    const twin = seen.get(key);
    if (twin) {
      field ??= fieldOf(p.flag);
      lines.push(`port ${p.port} is asked for twice: ${twin.what} (${twin.derived ?? twin.flag}) and ${p.what} (${p.derived ?? p.flag}); change one`);
      continue;
    }
    seen.set(key, p);
    const problem = await probePort(p.host, p.port);
    if (!problem) continue;
    field ??= fieldOf(p.flag);
    const how = p.derived ? `${p.flag} (it is ${p.derived})` : p.flag;
    lines.push(`port ${p.port} on ${p.host} (${p.what}) ${problem === "in use" ? "is in use" : "needs privileges this user lacks"}: choose another with ${how}`);
  }
  if (field) throw new ValidationError(field, lines.join("; "), `${field}: ${lines.join(";\n  ")}`);
}

/** "--api-port" -> "apiPort" */
function fieldOf(flag: string): string {
  return flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
