/**
 * The software update point's synchronisation schedule (its `syncIntervalHours`, off unless set)
 * and what follows every successful synchronisation: the enabled rules marked "run after each
 * synchronisation" run, as the platform's "Run the rule after any software update point
 * synchronization". The schedule is checked on a tick (`site serve`: every minute): a software
 * update point is due when its last synchronisation (the newest SMS_WSUS_SYNC_MANAGER done or failed
 * status message from it) is an interval old, or when there is no record of one.
 */
import type { ComponentLog } from "../../logs/cmtrace.ts";
import { every, type Schedule } from "../../schedule.ts";
import type { Adr } from "../../site/services/adrs.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import type { AdrRunResult } from "./adr.ts";
import type { SyncResult } from "./sync.ts";

const HOUR_MS = 3600_000;
export const SYNC_COMPONENT = "SMS_WSUS_SYNC_MANAGER";

/** One rule run after a synchronisation: its outcome, or why it could not run. */
export interface RuleAfterSync {
  rule: string;
  matched?: number;
  files?: number;
  failed?: number;
  error?: string;
}

/** A synchronisation and the rules that ran after it. */
export interface SyncOutcome extends SyncResult {
  rulesRun: RuleAfterSync[];
}

/**
 * Runs the software update point's enabled run-after-sync rules one after another; a rule that
 * fails is reported and the others still run.
 * @example
 * const ran = await runRulesAfterSync({ adrs: s.adrs, run: (n) => runner.run(n), log }, "sup01.contoso.com");
 */
export async function runRulesAfterSync(d: { adrs: { runAfterSync(server: string): Promise<Adr[]> }; run(name: string): Promise<AdrRunResult>; log: ComponentLog }, fqdn: string): Promise<RuleAfterSync[]> {
  const out: RuleAfterSync[] = [];
  for (const rule of await d.adrs.runAfterSync(fqdn)) {
    d.log.info(`Running automatic deployment rule ${rule.name} after the synchronization of ${fqdn}.`);
    try {
      const r = await d.run(rule.name);
      out.push({ rule: rule.name, matched: r.matched, files: r.files.length, failed: r.failed });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      d.log.error(`Automatic deployment rule ${rule.name} did not run after the synchronization of ${fqdn}: ${message}`);
      out.push({ rule: rule.name, error: message });
    }
  }
  return out;
}

/** A software update point's schedule as shown: its interval, its last synchronisation and the next one. */
export interface SyncSchedule {
  server: string;
  /** null: off (synchronises only when asked). */
  syncIntervalHours: number | null;
  lastSync: { time: string; succeeded: boolean; text: string } | null;
  /** When the schedule synchronises next (ISO time; "now" when due); null when off. */
  nextSync: string | null;
}

export interface SyncScheduleDeps {
  roles: Pick<RolesService, "list" | "softwareUpdatePoint">;
  status: Pick<StatusService, "latest">;
  now: () => Date;
}

/** The schedule of the software update point on `fqdn`. */
export async function syncSchedule(d: SyncScheduleDeps, fqdn: string): Promise<SyncSchedule> {
  const settings = await d.roles.softwareUpdatePoint(fqdn);
  const server = fqdn.toLowerCase();
  const interval = settings.syncIntervalHours ?? null;
  const m = await d.status.latest(SYNC_COMPONENT, server, [StatusId.SUP_SYNC_DONE, StatusId.SUP_SYNC_FAILED]);
  const lastSync = m ? { time: m.time, succeeded: m.messageId === StatusId.SUP_SYNC_DONE, text: m.text } : null;
  let nextSync: string | null = null;
  if (interval !== null) {
    const due = lastSync ? new Date(lastSync.time).getTime() + interval * HOUR_MS : d.now().getTime();
    nextSync = new Date(Math.max(due, d.now().getTime())).toISOString();
  }
  return { server, syncIntervalHours: interval, lastSync, nextSync };
}

export interface SyncTickDeps extends SyncScheduleDeps {
  log: ComponentLog;
  /** Synchronises one software update point and runs its rules after it: what Synchronize Now does. */
  sync(fqdn: string): Promise<unknown>;
}

/**
 * One tick of the schedule: synchronises every software update point that is due, one after
 * another; returns those it synchronised (a failed one too: its failure is its status message).
 */
export async function runDueSyncs(d: SyncTickDeps, signal?: AbortSignal): Promise<string[]> {
  const done: string[] = [];
  for (const role of await d.roles.list()) {
    if (signal?.aborted) break;
    if (role.kind !== "software-update-point" || !role.settings.syncIntervalHours) continue;
    const s = await syncSchedule(d, role.serverFqdn);
    if (s.nextSync === null || new Date(s.nextSync).getTime() > d.now().getTime()) continue;
    d.log.info(`Scheduled synchronization of ${s.server} (every ${s.syncIntervalHours} hour(s); last ${s.lastSync ? s.lastSync.time : "never"}).`);
    // The sync records its own failure (status message, wsyncmgr.log); the next software update point still goes.
    await d.sync(s.server).catch(() => undefined);
    done.push(s.server);
  }
  return done;
}

/** Runs `runDueSyncs` every `tickMs` (default one minute) until stopped. */
export function scheduleSupSync(d: SyncTickDeps, o: { tickMs?: number } = {}): Schedule {
  const tick = o.tickMs ?? 60_000;
  return every(async () => tick, async (signal) => void (await runDueSyncs(d, signal)), {
    firstDelayMs: tick,
    onError: (e) => d.log.error(`The synchronization schedule failed: ${e instanceof Error ? e.message : String(e)}`),
  });
}
