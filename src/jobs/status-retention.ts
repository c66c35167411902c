/**
 * Delete Aged Status Messages: the site server deletes status messages (the site's and the
 * clients') older than the site setting `status-message-retention` (days, default 30), every
 * `status-cleanup-interval` (default 1 d), in batches so that uploads and other writers go on.
 */
import type { ComponentLog } from "../logs/cmtrace.ts";
import { every, type Schedule } from "../schedule.ts";
import type { SettingsService } from "../site/services/settings.ts";
import type { StatusService } from "../site/services/status.ts";

const DAY_MS = 24 * 60 * 60_000;

export interface StatusRetentionDeps {
  settings: Pick<SettingsService, "count" | "durationMs">;
  status: Pick<StatusService, "deleteOlderThan">;
  log: ComponentLog;
  now: () => Date;
}

/** One run: deletes what is older than the retention; returns how many were deleted. */
export async function deleteAgedStatusMessages(d: StatusRetentionDeps, signal?: AbortSignal): Promise<number> {
  const days = await d.settings.count("status-message-retention");
  const before = new Date(d.now().getTime() - days * DAY_MS);
  const deleted = await d.status.deleteOlderThan(before, signal ? { signal } : {});
  if (deleted > 0) d.log.info(`Deleted ${deleted} status message(s) older than ${days} day(s) (before ${before.toISOString()}; site setting status-message-retention).`);
  return deleted;
}

/** Runs `deleteAgedStatusMessages` every `status-cleanup-interval`, the first run soon after start. */
export function scheduleStatusRetention(d: StatusRetentionDeps, o: { firstDelayMs?: number } = {}): Schedule {
  return every(
    () => d.settings.durationMs("status-cleanup-interval"),
    async (signal) => void (await deleteAgedStatusMessages(d, signal)),
    {
      // Soon after start: a site server that restarts more often than the interval still cleans
      // up, and a run with nothing aged is one indexed look.
      firstDelayMs: o.firstDelayMs ?? 5_000,
      onError: (e) => d.log.error(`Deleting aged status messages failed: ${e instanceof Error ? e.message : String(e)}`),
    },
  );
}
