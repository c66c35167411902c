/**
 * The last line of a server process that fails. An exception no code caught (or a promise
 * rejection no code handled) still ends the process, as Node's default does, but first it goes
 * into the process's own CMTrace log with its stack, where administrators look. Without this the
 * cause goes only to standard error, which a supervisor may not keep: a gateway worker restarted
 * by its primary left only "exited (1)" in CMGService.log.
 *
 * Node's `uncaughtExceptionMonitor` event runs before the default handler and does not change what
 * happens next; the log writes synchronously (cmtrace.ts), so the line is on disk before the exit.
 */
import type { ComponentLog } from "../logs/cmtrace.ts";

/**
 * @example
 * const unwatch = logFatalFaults(serviceLog, `Gateway worker ${index} (pid ${process.pid})`);
 */
export function logFatalFaults(log: Pick<ComponentLog, "error">, what: string): () => void {
  const onFault = (err: unknown, origin: NodeJS.UncaughtExceptionOrigin): void => {
    const why = origin === "unhandledRejection" ? "a promise rejection no code handled" : "an exception no code caught";
    const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
    try {
      log.error(`${what} is exiting (code 1) on ${why}: ${detail}. This is a defect: report it with this line; a supervised process is started again.`);
    } catch {
      // The log itself failed (disk full): Node still prints the error on standard error.
    }
  };
  process.on("uncaughtExceptionMonitor", onFault);
  return () => process.off("uncaughtExceptionMonitor", onFault);
}
