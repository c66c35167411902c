/**
 * Start, stop and status of a `local`-provider CMG's instances on this machine, for the CLI and
 * the admin API alike. The process that runs them writes `<data>/cmg/<name>/start.pid`; stopping
 * signals that process, which stops its instances and removes the file.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { CmgView } from "../site/services/cmgs.ts";
import type { OpenedSite } from "../site/site.ts";
import { writeCmgBundle } from "./bundle.ts";
import { runLocalInstances, type InstanceRestart } from "./local-provider.ts";

/** Where the process running a CMG's local instances writes its process ID. */
export function localPidFile(dataDir: string, name: string): string {
  return join(dataDir, "cmg", name.toLowerCase(), "start.pid");
}

export interface RunningLocalCmg {
  view: CmgView;
  /** Process IDs of the instances (they change when one is restarted). */
  pids(): number[];
  /** Stops every instance and removes the pid file. */
  stop(): Promise<void>;
}

/**
 * Writes the start-up bundle and starts every instance of a local-provider CMG; resolves once
 * each listens (after stopping them again when one cannot start).
 *
 * @example
 * const running = await startLocalCmg(site, "cmg1", { dataDir });
 * await waitForStop();
 * await running.stop();
 */
export async function startLocalCmg(
  site: OpenedSite,
  name: string,
  o: {
    dataDir: string;
    env?: NodeJS.ProcessEnv;
    /**
     * How a restart reaches the site database (restart count for `cmg show`, status message).
     * Default: through `site`, which the caller then keeps open while the instances run. The CLI
     * closes its site once the instances run and opens one briefly per restart instead.
     */
    withSite?: (fn: (s: OpenedSite) => Promise<void>) => Promise<void>;
  },
): Promise<RunningLocalCmg> {
  const view = await site.services.cmgs.show(name);
  if (view.provider !== "local") throw new ValidationError("provider", `CMG ${view.name} uses the ${view.provider} provider: run its instances with \`opencmg gateway serve\` on their hosts`);
  const bundle = await writeCmgBundle(site, view);
  const log = site.logs.component(LOG_FILES.cmgSetup);
  const withSite = o.withSite ?? ((fn: (s: OpenedSite) => Promise<void>) => fn(site));
  // One write at a time, in order; a failed one (database busy, gone) is logged and the supervisor goes on.
  let writes: Promise<void> = Promise.resolve();
  const onRestart = (r: InstanceRestart): void => {
    writes = writes.then(() =>
      withSite((s) => s.services.cmgs.recordRestart(view.name, r.index, r.exit, view.serviceFqdn)).catch((e: unknown) =>
        log.warn(`Could not record the restart of instance ${r.index} in the site database (${(e as Error).message}); the instance runs anyway.`),
      ),
    );
  };
  const running = runLocalInstances({ files: bundle.files, dataDir: o.dataDir, log, onRestart, ...(o.env ? { env: o.env } : {}) });
  const pidFile = join(bundle.dir, "start.pid");
  writeFileSync(pidFile, String(process.pid));
  const stop = async (): Promise<void> => {
    await running.stop();
    await writes;
    rmSync(pidFile, { force: true });
  };
  try {
    await running.ready;
  } catch (e) {
    await stop();
    throw e;
  }
  log.info(`Started ${view.instanceCount} local instance(s) of ${view.name}.`);
  return { view, pids: () => running.pids(), stop };
}

/** The process running a CMG's local instances, if its pid file is there and the process lives. */
export function localCmgStatus(dataDir: string, name: string): { running: boolean; pid: number | null; pidFile: string } {
  const pidFile = localPidFile(dataDir, name);
  if (!existsSync(pidFile)) return { running: false, pid: null, pidFile };
  const pid = Number(readFileSync(pidFile, "utf8"));
  let running = false;
  try {
    process.kill(pid, 0);
    running = true;
  } catch (e) {
    // EPERM: it lives, under another user.
    running = (e as NodeJS.ErrnoException).code === "EPERM";
  }
  return { running, pid, pidFile };
}

/**
 * Asks the process that runs a CMG's local instances to stop them (SIGTERM). A pid file left by a
 * process that is gone is removed.
 */
export function stopLocalCmg(dataDir: string, name: string): { pid: number } {
  const pidFile = localPidFile(dataDir, name);
  if (!existsSync(pidFile)) throw new ValidationError("name", `CMG ${name} is not running here (no ${pidFile})`);
  const pid = Number(readFileSync(pidFile, "utf8"));
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    rmSync(pidFile, { force: true });
  }
  return { pid };
}
