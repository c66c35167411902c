/**
 * The site's administrative runs for one actor, shared by the CLI and the admin API, each
 * refused for a read-only actor and written to the audit log (site/audited.ts).
 */
import type { SiteOperations } from "../api/operations.ts";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import { siteUsage, type EndpointMonitor } from "../roles/scp/endpoint-monitor.ts";
import { checkUpdateFeed } from "../roles/scp/update-feed.ts";
import { syncSoftwareUpdates } from "../roles/sup/sync.ts";
import { auditedAction } from "../site/audited.ts";
import type { Actor } from "../site/services/audit.ts";
import type { OpenedSite } from "../site/site.ts";
import { adrRunner, endpointMonitor, supSyncDeps, updateFeedDeps } from "./role-deps.ts";

export interface OperationsOptions {
  /** The monitor the site's check runs through (the site server's own, so one run is shared). */
  monitor?: EndpointMonitor | undefined;
  /** Checks started in the background, so their owner can wait for them on close. */
  running?: Set<Promise<void>> | undefined;
}

export function siteOperations(site: OpenedSite, actor: Actor, o: OperationsOptions = {}): SiteOperations {
  const s = site.servicesAs(actor);
  const audit = site.services.audit;
  return {
    supSync: (fqdn) =>
      auditedAction(audit, actor, "sup.sync", `server/${fqdn}/role/software-update-point`, () => syncSoftwareUpdates(supSyncDeps(site), fqdn), (r) => ({ updates: r.updates, added: r.added, upstreamUrl: r.upstreamUrl, route: r.route })),
    adrRun: (name, onProgress) =>
      auditedAction(audit, actor, "adrs.run", `adr/${name}`, () => adrRunner(site).run(name, onProgress), (r) => ({ matched: r.matched, files: r.files.length, failed: r.failed })),
    scpCheckUpdates: (fqdn) =>
      auditedAction(audit, actor, "scp.checkUpdates", `server/${fqdn}/role/service-connection-point`, () => checkUpdateFeed(updateFeedDeps(site), fqdn), (r) => ({ latestVersion: r.latestVersion, releases: r.releases, route: r.route })),
    startSiteCheck: async () => {
      const usage = await siteUsage(s);
      const server = usage.scpServer;
      if (!server) throw new ValidationError("site", "no service connection point is installed: the site's check runs from its server (opencmg role add FQDN service-connection-point)");
      const record = await auditedAction(audit, actor, "checks.start", `server/${server}/role/service-connection-point`, () => s.checks.start(actor.name, server, { kind: "site" }), (r) => ({ check: r.id }));
      const monitor = o.monitor ?? endpointMonitor(site);
      const log = site.logs.component(LOG_FILES.endpointCheck);
      const run = monitor
        .runOnce()
        .then(async (r) => {
          if (!r) return s.checks.fail(record.id, { code: "NO_SCP", message: "the service connection point was removed before the check ran" });
          await s.checks.finish(record.id, { report: r.report, transition: r.transition, statusMessage: r.message?.messageId ?? null, component: r.failing.length > 0 ? "Critical" : "OK" });
        })
        .catch(async (e: unknown) => {
          const err = e instanceof OpenCmgError ? { code: e.code, message: e.message } : { code: "INTERNAL", message: e instanceof Error ? e.message : String(e) };
          log.error(`Connectivity check ${record.id} failed: ${err.message}`);
          await s.checks.fail(record.id, err).catch(() => undefined);
        });
      o.running?.add(run);
      void run.finally(() => o.running?.delete(run));
      return record;
    },
  };
}
