/**
 * What the admin API asks of the site beyond one service call: runs that go out to the internet
 * through the roles (a synchronisation, a rule run, a connectivity check). The wiring root
 * (app/operations.ts) builds them for an actor; each is audited there, as it is for the CLI.
 */
import type { AdrRunResult, DownloadProgress } from "../roles/sup/adr.ts";
import type { FeedCheckResult } from "../roles/scp/update-feed.ts";
import type { SyncOutcome } from "../roles/sup/sync-schedule.ts";
import type { Actor } from "../site/services/audit.ts";
import type { EndpointCheckRecord } from "../site/services/checks.ts";

export interface SiteOperations {
  /** `sup sync FQDN`: the software update point synchronises now; then its enabled run-after-sync rules run. */
  supSync(fqdn: string): Promise<SyncOutcome>;
  /** `adr run NAME`. */
  adrRun(name: string, onProgress?: (p: DownloadProgress & { file: string }) => void): Promise<AdrRunResult>;
  /** `scp check-updates FQDN`. */
  scpCheckUpdates(fqdn: string): Promise<FeedCheckResult>;
  /**
   * Starts a connectivity check and returns its record at once, still running; its results land
   * in the record (`site.services.checks.get(id)`). Without a server: the site's own check from
   * the service connection point's server (`check --site`, recorded as status); with one: the
   * endpoints of that server's roles through its proxy (`check --server FQDN`).
   */
  startCheck(server?: string): Promise<EndpointCheckRecord>;
}

export type OperationsFor = (actor: Actor) => SiteOperations;
