/**
 * `opencmg site serve` runs the local-provider CMGs itself: every CMG created, started, stopped,
 * scaled or deleted (console, API or CLI) takes effect without a shell running `opencmg cmg start`.
 * Each CMG gets the same supervisor `cmg start` uses (startLocalCmg); one whose pid file another
 * live process holds (a `cmg start` or `opencmg up`) is left to it and taken over once it exits.
 */
import { ConflictError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { OpenedSite } from "../site/site.ts";
import { startLocalCmg, type RunningLocalCmg } from "./local-runner.ts";

export interface LocalCmgSupervisor {
  /** Names of the CMGs whose instances this process runs. */
  names(): string[];
  /** Looks at the site now for local CMGs it does not run yet. */
  scan(): Promise<void>;
  /** Stops every instance it runs (SIGTERM: they drain) and removes their pid files. */
  close(): Promise<void>;
}

/**
 * @example
 * const cmgs = await superviseLocalCmgs(site, { dataDir: site.paths.data });
 * // ... on stop:
 * await cmgs.close();
 */
export async function superviseLocalCmgs(site: OpenedSite, o: { dataDir: string; pollMs?: number }): Promise<LocalCmgSupervisor> {
  const log = site.logs.component(LOG_FILES.cmgSetup);
  const pollMs = o.pollMs ?? 2000;
  const running = new Map<string, RunningLocalCmg>();
  // Why a CMG was last left alone: logged once per change, not at every scan.
  const leftAlone = new Map<string, string>();
  let closed = false;

  const note = (name: string, why: string, warn: boolean): void => {
    if (leftAlone.get(name) === why) return;
    leftAlone.set(name, why);
    (warn ? log.warn : log.info).call(log, why);
  };

  const scanOnce = async (): Promise<void> => {
    const cmgs = await site.services.cmgs.list();
    for (const c of cmgs) {
      if (closed) return;
      if (c.provider !== "local" || c.runState === "deleting") continue;
      // A CMG it runs follows the site on its own schedule (startLocalCmg).
      if (running.has(c.name)) continue;
      try {
        const r = await startLocalCmg(site, c.name, { dataDir: o.dataDir, pollMs });
        running.set(c.name, r);
        leftAlone.delete(c.name);
        void r.done.then(() => running.delete(c.name));
        log.info(`The site server runs the local instances of CMG ${c.name} (${c.runState === "running" ? `${c.instanceCount} instance(s)` : "stopped: none until it is started"}).`);
      } catch (e) {
        if (e instanceof ConflictError) note(c.name, `CMG ${c.name} is left to the process that runs it already: ${e.message}; the site server takes it over once that process exits.`, false);
        else note(c.name, `Could not run the local instances of CMG ${c.name}: ${(e as Error).message}; trying again every ${pollMs / 1000} s.`, true);
      }
    }
  };

  let scanning: Promise<void> = Promise.resolve();
  const scan = (): Promise<void> =>
    (scanning = scanning.then(async () => {
      if (!closed) await scanOnce();
    }).catch((e: unknown) => log.warn(`Could not read the CMGs at the site: ${(e as Error).message}`)));

  await scan();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => void scan().then(() => !closed && schedule()), pollMs);
  };
  schedule();
  return {
    names: () => [...running.keys()],
    scan,
    async close() {
      closed = true;
      clearTimeout(timer);
      await scanning;
      await Promise.all([...running.values()].map((r) => r.stop()));
      running.clear();
    },
  };
}
