/**
 * Start, stop and status of a `local`-provider CMG's instances on this machine, for the CLI and
 * the admin API alike. The process that runs them writes `<data>/cmg/<name>/start.pid`; stopping
 * signals that process, which stops its instances and removes the file.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { CmgView } from "../site/services/cmgs.ts";
import type { OpenedSite } from "../site/site.ts";
import { writeCmgBundle } from "./bundle.ts";
import { runLocalInstances, type InstanceRestart } from "./local-provider.ts";

/** Where the process running a CMG's local instances writes its process ID. */
export function localPidFile(dataDir: string, name: string): string {
  return join(dataDir, "cmg", name.toLowerCase(), "start.pid");
}

/** True while process `pid` lives (EPERM: it lives, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Makes this process the one that runs a CMG's local instances: creates its pid file, refusing
 * (ConflictError) while another live process holds it, so `opencmg site serve`, `opencmg cmg start`
 * and `opencmg up` never run the same instances twice. A file left by a process that is gone is taken over.
 */
export function claimLocalCmg(dataDir: string, name: string): string {
  const pidFile = localPidFile(dataDir, name);
  mkdirSync(dirname(pidFile), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      // "wx": created only if absent, so two processes starting at once cannot both win.
      writeFileSync(pidFile, String(process.pid), { flag: "wx" });
      return pidFile;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e;
    }
    const pid = Number(readFileSync(pidFile, "utf8"));
    if (pid === process.pid) return pidFile;
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new ConflictError("name", `the instances of CMG ${name} already run in process ${pid} (${pidFile})`);
    rmSync(pidFile, { force: true });
  }
}

export interface RunningLocalCmg {
  view: CmgView;
  /** Process IDs of the instances (they change when one is restarted). */
  pids(): number[];
  /** Resolves once the CMG was deleted at the site: its instances and bundle are gone, the supervisor should exit. */
  done: Promise<void>;
  /** Looks at the site now and follows what changed (also runs every `pollMs`). */
  follow(): Promise<void>;
  /** Stops every instance and removes the pid file. */
  stop(): Promise<void>;
}

/** What the local provider follows of a CMG: which instances run, from which bundle. */
function bundleKey(v: CmgView): string {
  return JSON.stringify({ n: v.runState === "running" ? v.instanceCount : 0, cert: v.serverCertificate.thumbprint });
}

/**
 * Writes the start-up bundle and starts every instance of a local-provider CMG; resolves once
 * each listens (after stopping them again when one cannot start). Then follows the CMG at the
 * site every `pollMs` (default 5 s): the instance count (instances started or stopped, the
 * bundle rewritten), a renewed certificate (the bundle rewritten, so a restarted instance starts
 * with it; running ones get it from the connection points), `cmg stop`/`start` (all instances
 * stopped or started again; the supervisor stays), and a delete (instances stopped, the bundle
 * and its keys removed, `done` resolved).
 *
 * @example
 * const running = await startLocalCmg(site, "cmg1", { dataDir });
 * await Promise.race([waitForStop(), running.done]);
 * await running.stop();
 */
export async function startLocalCmg(
  site: OpenedSite,
  name: string,
  o: {
    dataDir: string;
    env?: NodeJS.ProcessEnv;
    /**
     * How a restart reaches the site database (restart count for `cmg show`, status message), and
     * how the CMG is read again. Default: through `site`, which the caller then keeps open while the
     * instances run. The CLI closes its site once the instances run and opens one briefly per use instead.
     */
    withSite?: (fn: (s: OpenedSite) => Promise<void>) => Promise<void>;
    /** How often the CMG is read again at the site (default 5 s). */
    pollMs?: number;
  },
): Promise<RunningLocalCmg> {
  let view = await site.services.cmgs.show(name);
  if (view.provider !== "local") throw new ValidationError("provider", `CMG ${view.name} uses the ${view.provider} provider: run its instances with \`opencmg gateway serve\` on their hosts`);
  if (view.runState === "deleting") throw new ValidationError("name", `CMG ${view.name} is being deleted`);
  const pidFile = claimLocalCmg(o.dataDir, view.name);
  let bundle;
  try {
    bundle = await writeCmgBundle(site, view);
  } catch (e) {
    rmSync(pidFile, { force: true });
    throw e;
  }
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
  const files = (b: { files: string[] }, v: CmgView): string[] => (v.runState === "running" ? b.files : []);
  // The instances log as the process that runs them was told to (`site serve --log-level ... --log-size-mb ...`).
  const logArgs = ["--log-level", site.logs.level, "--log-size-mb", String(site.logs.maxBytes / (1024 * 1024))];
  const running = runLocalInstances({ files: files(bundle, view), dataDir: o.dataDir, log, logArgs, onRestart, ...(o.env ? { env: o.env } : {}) });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    stopped = true;
    clearTimeout(timer);
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
  log.info(view.runState === "running" ? `Started ${view.instanceCount} local instance(s) of ${view.name}.` : `CMG ${view.name} is stopped: no instance started; waiting for \`opencmg cmg start ${view.name}\`.`);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let key = bundleKey(view);
  let following: Promise<void> = Promise.resolve();
  const followOnce = async (): Promise<void> => {
    if (stopped) return;
    let next: CmgView | null = null;
    let newFiles: string[] | null = null;
    await withSite(async (s) => {
      try {
        next = await s.services.cmgs.show(view.name);
      } catch (e) {
        if (e instanceof NotFoundError) return;
        throw e;
      }
      if (next.runState === "running" && bundleKey(next) !== key) newFiles = files(await writeCmgBundle(s, next), next);
    });
    if (stopped) return;
    if (next === null || (next as CmgView).runState === "deleting") {
      log.info(`CMG ${view.name} is being deleted: stopping its instances and removing its start-up bundle and keys.`);
      await stop();
      rmSync(bundle.dir, { recursive: true, force: true });
      resolveDone();
      return;
    }
    const v: CmgView = next;
    if (v.runState !== view.runState) log.info(`CMG ${v.name} is now ${v.runState}: ${v.runState === "running" ? `starting its ${v.instanceCount} instance(s)` : "stopping its instances"}.`);
    else if (v.instanceCount !== view.instanceCount) log.info(`CMG ${v.name} scaled from ${view.instanceCount} to ${v.instanceCount} instance(s).`);
    view = v;
    key = bundleKey(v);
    if (v.runState !== "running") await running.setFiles([]);
    else if (newFiles) await running.setFiles(newFiles);
  };
  const follow = (): Promise<void> => (following = following.then(followOnce, followOnce).catch((e: unknown) => log.warn(`Could not follow CMG ${view.name} at the site: ${(e as Error).message}`)));
  const schedule = (): void => {
    timer = setTimeout(() => {
      void follow().then(() => {
        if (!stopped) schedule();
      });
    }, o.pollMs ?? 5000);
    // waitForStop keeps the CLI's process alive; an in-process caller ends with stop().
    timer.unref();
  };
  schedule();
  return { get view() { return view; }, pids: () => running.pids(), done, follow, stop };
}

/** The process running a CMG's local instances, if its pid file is there and the process lives. */
export function localCmgStatus(dataDir: string, name: string): { running: boolean; pid: number | null; pidFile: string } {
  const pidFile = localPidFile(dataDir, name);
  if (!existsSync(pidFile)) return { running: false, pid: null, pidFile };
  const pid = Number(readFileSync(pidFile, "utf8"));
  return { running: alive(pid), pid, pidFile };
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
