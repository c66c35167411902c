/**
 * The wiring of each role runner: what it needs of an opened site, built here once, so that a role
 * gets narrow, typed dependencies and never the whole site (nor its database).
 */
import { existsSync, readFileSync } from "node:fs";
import type { ConnectionPointRoleDeps } from "../roles/cmg-connection-point/role.ts";
import { servicesLink } from "../roles/cmg-connection-point/site-link.ts";
import type { ManagementPointDeps } from "../roles/mp/server.ts";
import { siteInternetMps } from "../roles/mp/internet-mps.ts";
import { EndpointMonitor, type EndpointMonitorDeps, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { CmgAlertEvaluator } from "../roles/scp/cmg-alerts.ts";
import type { FeedDeps } from "../roles/scp/update-feed.ts";
import { AdrRunner } from "../roles/sup/adr.ts";
import { ContentLibrary } from "../roles/sup/content-library.ts";
import type { SoftwareUpdatePointDeps } from "../roles/sup/serve.ts";
import type { SupSyncDeps } from "../roles/sup/sync.ts";
import { SitePki } from "../site/site-pki.ts";
import type { OpenedSite } from "../site/site.ts";

export function managementPointDeps(site: OpenedSite): ManagementPointDeps {
  const s = site.services;
  return { servers: s.servers, roles: s.roles, status: s.status, clients: s.clients, sites: s.sites, tokens: s.tokens, settings: s.settings, logs: site.logs, internetMps: siteInternetMps(site) };
}

export function contentLibrary(site: OpenedSite): ContentLibrary {
  return new ContentLibrary(site.paths.content);
}

export function softwareUpdatePointDeps(site: OpenedSite): SoftwareUpdatePointDeps {
  return { roles: site.services.roles, updates: site.services.updates, logs: site.logs, library: contentLibrary(site) };
}

export function supSyncDeps(site: OpenedSite): SupSyncDeps {
  const s = site.services;
  return { updates: s.updates, roles: s.roles, status: s.status, egress: site.egress, logs: site.logs };
}

export function adrRunner(site: OpenedSite): AdrRunner {
  const s = site.services;
  return new AdrRunner({ adrs: s.adrs, updates: s.updates, status: s.status, egress: site.egress, logs: site.logs, library: contentLibrary(site) });
}

export function updateFeedDeps(site: OpenedSite): FeedDeps {
  const s = site.services;
  return { roles: s.roles, status: s.status, egress: site.egress, logs: site.logs };
}

export function endpointMonitorDeps(site: OpenedSite): EndpointMonitorDeps {
  const s = site.services;
  return { roles: s.roles, servers: s.servers, cmgs: s.cmgs, status: s.status, egress: site.egress, logs: site.logs, now: site.ctx.now };
}

/** The service connection point's endpoint monitor of a site, trusting `<data>/egress-ca.pem` too; its interval is the site's endpoint-check-interval unless given. */
export function endpointMonitor(site: OpenedSite, opts: EndpointMonitorOptions = {}): EndpointMonitor {
  const fileCa = existsSync(site.paths.egressCa) ? [readFileSync(site.paths.egressCa, "utf8")] : [];
  const ca = [...fileCa, ...(opts.ca ?? [])];
  // An interval given here (tests, $OPENCMG_ENDPOINT_CHECK_INTERVAL) wins; else the site's setting, read before each run.
  const interval = opts.intervalMs === undefined && !opts.readIntervalMs ? { readIntervalMs: () => site.services.settings.durationMs("endpoint-check-interval") } : {};
  return new EndpointMonitor(endpointMonitorDeps(site), { ...opts, ...interval, ...(ca.length > 0 ? { ca } : {}) });
}

export function connectionPointRoleDeps(site: OpenedSite): ConnectionPointRoleDeps {
  const s = site.services;
  const pki = new SitePki(site.paths.data);
  return { site: servicesLink(s, () => pki.caPem), logs: site.logs, egress: site.egress };
}

/**
 * The CMG alert evaluation of a site. Stop-on-critical stops a local-provider CMG's instances that
 * `opencmg cmg start` runs on this machine; an external CMG's instances are stopped by their hosts.
 */
export function cmgAlertEvaluator(site: OpenedSite): CmgAlertEvaluator {
  const s = site.services;
  return new CmgAlertEvaluator({
    cmgs: s.cmgs,
    traffic: s.cmgTraffic,
    alerts: s.cmgAlerts,
    status: s.status,
    logs: site.logs,
    now: site.ctx.now,
    // The same stop as `opencmg cmg stop`: the CMG stays stopped (across restarts) until started again.
    stop: async (name) => {
      const v = await s.cmgs.stop(name, "the traffic alert reached its critical level (stop on critical)");
      return `the CMG is ${v.status}: its instances stop and the connection points end their tunnels; \`opencmg cmg start ${name}\` starts it again`;
    },
  });
}
