/**
 * The site's administrative runs for one actor, shared by the CLI and the admin API, each
 * refused for a read-only actor and written to the audit log (site/audited.ts).
 */
import type { SiteOperations } from "../api/operations.ts";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import { checkPath } from "../endpoints/check-path.ts";
import { checkEndpoints, checkTargets, STAGE_TIMEOUT_MS } from "../endpoints/checker.ts";
import { siteUsage, type EndpointMonitor, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { endpointSelection } from "../roles/scp/endpoint-selection.ts";
import { checkUpdateFeed } from "../roles/scp/update-feed.ts";
import { syncSoftwareUpdates } from "../roles/sup/sync.ts";
import { runRulesAfterSync } from "../roles/sup/sync-schedule.ts";
import { auditedAction } from "../site/audited.ts";
import type { Actor } from "../site/services/audit.ts";
import type { OpenedSite } from "../site/site.ts";
import { adrRunner, endpointMonitor, supSyncDeps, updateFeedDeps } from "./role-deps.ts";

export interface OperationsOptions {
  /** The monitor the site's check runs through (the site server's own, so one run is shared). */
  monitor?: EndpointMonitor | undefined;
  /** Checks started in the background, so their owner can wait for them on close. */
  running?: Set<Promise<void>> | undefined;
  /** Stage timeout, trusted roots and (tests) target mapping of a check through one server. */
  check?: Pick<EndpointMonitorOptions, "stageTimeoutMs" | "concurrency" | "ca" | "wildcardHosts" | "mapTarget"> | undefined;
  /** Stops checks through one server when their owner closes. */
  signal?: AbortSignal | undefined;
}

export function siteOperations(site: OpenedSite, actor: Actor, o: OperationsOptions = {}): SiteOperations {
  const s = site.servicesAs(actor);
  const audit = site.services.audit;
  const ops: SiteOperations = {
    supSync: async (fqdn) => {
      const r = await auditedAction(audit, actor, "sup.sync", `server/${fqdn}/role/software-update-point`, () => syncSoftwareUpdates(supSyncDeps(site), fqdn), (r) => ({ updates: r.updates, added: r.added, upstreamUrl: r.upstreamUrl, route: r.route }));
      // Only after a successful synchronisation (a failed one threw above); each run audited as adrs.run.
      const rulesRun = await runRulesAfterSync({ adrs: s.adrs, run: (name) => ops.adrRun(name), log: site.logs.component(LOG_FILES.ruleengine) }, r.server);
      return { ...r, rulesRun };
    },
    adrRun: (name, onProgress) =>
      auditedAction(audit, actor, "adrs.run", `adr/${name}`, () => adrRunner(site).run(name, onProgress), (r) => ({ matched: r.matched, files: r.files.length, failed: r.failed })),
    scpCheckUpdates: (fqdn) =>
      auditedAction(audit, actor, "scp.checkUpdates", `server/${fqdn}/role/service-connection-point`, () => checkUpdateFeed(updateFeedDeps(site), fqdn), (r) => ({ latestVersion: r.latestVersion, releases: r.releases, route: r.route })),
    startCheck: async (server) => {
      const fqdn = server === undefined ? undefined : (await s.servers.get(server)).fqdn;
      const from = fqdn ?? (await siteUsage(s)).scpServer;
      if (!from) throw new ValidationError("site", "no service connection point is installed: the site's check runs from its server (opencmg role add FQDN service-connection-point); or give server");
      const request = fqdn ? { kind: "server", server: fqdn } : { kind: "site" };
      const record = await auditedAction(audit, actor, "checks.start", `server/${from}${fqdn ? "" : "/role/service-connection-point"}`, () => s.checks.start(actor.name, from, request), (r) => ({ check: r.id, ...request }));
      const log = site.logs.component(LOG_FILES.endpointCheck);
      const work = fqdn ? () => serverCheck(fqdn) : () => siteCheck();
      const run = work()
        .then((result) => s.checks.finish(record.id, result))
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

  /** The site's own check (`check --site`): recorded as status (11488, the component). */
  async function siteCheck(): Promise<unknown> {
    const r = await (o.monitor ?? endpointMonitor(site)).runOnce();
    if (!r) throw new OpenCmgError("internal", "NO_SCP", "the service connection point was removed before the check ran");
    return { report: r.report, transition: r.transition, statusMessage: r.message?.messageId ?? null, component: r.failing.length > 0 ? "Critical" : "OK" };
  }

  /** `check --server FQDN`: the endpoints of that server's roles, through its proxy; no status recorded. */
  async function serverCheck(fqdn: string): Promise<unknown> {
    const c = o.check ?? {};
    const stageTimeoutMs = c.stageTimeoutMs ?? STAGE_TIMEOUT_MS;
    const log = site.logs.component(LOG_FILES.endpointCheck);
    const path = await checkPath({ site, server: fqdn, log, connectTimeoutMs: stageTimeoutMs, ca: c.ca });
    try {
      const selection = await endpointSelection(s, {}, "default", fqdn);
      let targets = checkTargets(selection, c.wildcardHosts ? { wildcardHosts: c.wildcardHosts } : {});
      if (c.mapTarget) targets = targets.map(c.mapTarget);
      const report = await checkEndpoints(targets, { egress: path.egress, log, stageTimeoutMs, ...(c.concurrency ? { concurrency: c.concurrency } : {}), ca: [...path.ca, ...(c.ca ?? [])], ...(o.signal ? { signal: o.signal } : {}) });
      return { report, route: path.describe, omitted: selection.omitted.map((x) => ({ id: x.endpoint.id, address: x.endpoint.address, reason: x.reason })) };
    } finally {
      await path.close();
    }
  }

  return ops;
}
