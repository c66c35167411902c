/**
 * `opencmg site serve` runs the CMG connection point role of its own server: adding the role to the
 * site server (console, API or CLI) starts it in this process, removing it stops it, binding it to
 * another CMG restarts it for that CMG, and a start that fails is tried again with a growing wait.
 * Roles on other servers are left alone: those hosts run their own role services.
 */
import type { OpenedSite } from "../site/site.ts";
import { connectionPointLogs } from "../connection-point/connection-point.ts";
import { runConnectionPointRole, type RunningConnectionPoint } from "../roles/cmg-connection-point/role.ts";
import { connectionPointRoleDeps } from "./role-deps.ts";

export interface LocalRolesOptions {
  /** The site server's own FQDN: the server whose roles this process runs. */
  server: string;
  /** How often the site is read for the role and its changes (default 2 s). */
  pollMs?: number;
  /** The longest wait between failed starts (default 60 s). */
  maxBackoffMs?: number;
}

export interface LocalRolesSupervisor {
  /** The CMG whose connection point this process runs, if any. */
  running(): string | undefined;
  /** Looks at the site's roles now. */
  scan(): Promise<void>;
  /** Stops the connection point (it drains its tunnels and reports them down). */
  close(): Promise<void>;
}

/**
 * @example
 * const roles = await superviseLocalRoles(site, { server: hostname() });
 * // ... on stop:
 * await roles.close();
 */
export async function superviseLocalRoles(site: OpenedSite, o: LocalRolesOptions): Promise<LocalRolesSupervisor> {
  const server = o.server.toLowerCase();
  const pollMs = o.pollMs ?? 2000;
  const maxBackoffMs = o.maxBackoffMs ?? 60_000;
  const log = connectionPointLogs(site.logs).service;
  let current: RunningConnectionPoint | undefined;
  let failures = 0;
  let retryAt = 0;
  let lastFailure = "";
  let closed = false;

  const stopCurrent = async (why: string): Promise<void> => {
    if (!current) return;
    const cp = current;
    current = undefined;
    log.info(`Stopping the connection point on ${server} for CMG ${cp.cmg}: ${why}.`);
    await cp.stop();
    log.info(`The connection point on ${server} for CMG ${cp.cmg} stopped.`);
  };

  const scanOnce = async (): Promise<void> => {
    const role = (await site.services.roles.list(server)).find((r) => r.kind === "cmg-connection-point");
    const wanted = role?.kind === "cmg-connection-point" ? role.settings.cmgName : undefined;
    if (current && current.cmg !== wanted) {
      await stopCurrent(!role ? "the role was removed from this server" : wanted ? `the role is now bound to CMG ${wanted}` : "the role is no longer bound to a CMG");
      failures = 0;
      retryAt = 0;
    }
    if (current || !wanted || closed || Date.now() < retryAt) return;
    try {
      log.info(`The CMG connection point role was assigned to this site server (${server}) for CMG ${wanted}: starting it in the site service.`);
      current = await runConnectionPointRole(connectionPointRoleDeps(site), server, { pollMs });
      failures = 0;
      lastFailure = "";
    } catch (e) {
      failures++;
      const wait = Math.min(pollMs * 2 ** failures, maxBackoffMs);
      retryAt = Date.now() + wait;
      const why = (e as Error).message;
      // The same failure again is not logged again: the log does not fill with it.
      if (why !== lastFailure) log.warn(`Could not start the connection point on ${server} for CMG ${wanted}: ${why}; trying again with a growing wait (up to ${maxBackoffMs / 1000} s).`);
      lastFailure = why;
    }
  };

  let scanning: Promise<void> = Promise.resolve();
  const scan = (): Promise<void> =>
    (scanning = scanning
      .then(async () => {
        if (!closed) await scanOnce();
      })
      .catch((e: unknown) => log.warn(`Could not read the roles of ${server} at the site: ${(e as Error).message}`)));

  log.info(`The site service runs the roles assigned to its own server ${server} (the CMG connection point); roles on other servers run on their hosts.`);
  await scan();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => void scan().then(() => !closed && schedule()), pollMs);
  };
  schedule();
  return {
    running: () => current?.cmg,
    scan,
    async close() {
      closed = true;
      clearTimeout(timer);
      await scanning;
      await stopCurrent("the site service is stopping");
    },
  };
}
