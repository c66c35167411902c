/**
 * The management point's process (`opencmg mp serve`): opens the site, finds or issues the MP's
 * server certificate, and serves the management-point role of one site system server.
 *
 * In a joined server's data folder (`opencmg server join`) it uses the site database it is given
 * (`--database`) and nothing else of the site: no site key, no site CA key, no token-signing key.
 * Its server certificate is issued by the site for the host key over the join, and the client
 * tokens it hands out are signed by the site over the join, for clients the site knows only.
 */
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import type { Logger as PinoLogger } from "pino";
import type { LogLevel } from "../logs/cmtrace.ts";
import { ValidationError } from "../errors.ts";
import { startManagementPoint, type ManagementPoint, type ManagementPointDeps } from "../roles/mp/server.ts";
import { isJoined, JoinedHost } from "../join/client.ts";
import { joinedClientTokens, joinedRoleTls } from "../join/role-client.ts";
import { LOG_FILES } from "../logs/files.ts";
import { SitePki } from "../site/site-pki.ts";
import { openSite, type OpenedSite } from "../site/site.ts";
import { managementPointDeps } from "./role-deps.ts";
import { MpMetrics } from "../roles/mp/metrics.ts";
import { serveMetrics, type MetricsServer } from "../observe/prometheus.ts";

export interface ManagementPointProcessOptions {
  dataDir: string;
  databaseUrl?: string | undefined;
  /** What this process does, named to other writers waiting on the database (`opencmg mp serve`). */
  work?: string | undefined;
  pino?: PinoLogger | undefined;
  /** The least severe CMTrace line written (default info). */
  logLevel?: LogLevel | undefined;
  /** The size at which each CMTrace file rotates, in bytes (default 2.5 MB). */
  logSizeBytes?: number | undefined;
  serverFqdn: string;
  listen: { host: string; port: number };
  /** Server certificate and key (PEM); issued by the site CA for the server when left out. */
  tls?: { certPem: string; keyPem: string } | undefined;
  /** The site CA (PEM); default `<data>/pki/site-ca.pem`. */
  caPem?: string | undefined;
  /** CAs client certificates chain to (PEM); default the site CA. */
  trustedClientRoots?: string[] | undefined;
  /** Serve Prometheus metrics (`GET /metrics`) here (default: not served). */
  metrics?: { host: string; port: number } | undefined;
}

export interface RunningManagementPoint {
  mp: ManagementPoint;
  /** The metrics listener's port, when served. */
  metricsPort: number | undefined;
  stop(): Promise<void>;
}

export async function runManagementPoint(o: ManagementPointProcessOptions): Promise<RunningManagementPoint> {
  if (isJoined(o.dataDir)) return runJoined(o);
  const site = await openSite({ dataDir: o.dataDir, databaseUrl: o.databaseUrl, work: o.work, pino: o.pino, logLevel: o.logLevel, logSizeBytes: o.logSizeBytes });
  try {
    const pki = new SitePki(site.paths.data);
    if (!o.caPem && !existsSync(`${pki.dir}/site-ca.pem`)) throw new ValidationError("ca", "the site CA is needed", `ca: no site CA in ${pki.dir}; run \`opencmg site init\` or give --ca`);
    const caPem = o.caPem ?? pki.caPem;
    const fqdn = o.serverFqdn.toLowerCase();
    // Listening on one address: clients may name it, so the issued certificate names it too.
    const ips = isIP(o.listen.host) && o.listen.host !== "0.0.0.0" && o.listen.host !== "::" ? [o.listen.host] : [];
    const tls = o.tls ?? (await pki.issue(`mp-${fqdn}`, { commonName: fqdn, usage: "server", dnsNames: [fqdn], ipAddresses: ips }));
    return await serve(o, managementPointDeps(site), { ...tls, caPem }, () => site.close());
  } catch (e) {
    await site.close();
    throw e;
  }
}

async function serve(o: ManagementPointProcessOptions, deps: ManagementPointDeps, tls: { certPem: string; keyPem: string; caPem: string }, closeSite: () => Promise<void>): Promise<RunningManagementPoint> {
  const fqdn = o.serverFqdn.toLowerCase();
  const metrics = new MpMetrics(fqdn, { processMetrics: o.metrics !== undefined });
  const mp = await startManagementPoint({ deps, serverFqdn: fqdn, listen: o.listen, tls, trustedClientRoots: o.trustedClientRoots, metrics });
  let served: MetricsServer | undefined;
  try {
    if (o.metrics) served = await serveMetrics(metrics.registry, o.metrics, () => ({ ok: true }));
  } catch (e) {
    await mp.close();
    throw e;
  }
  return {
    mp,
    metricsPort: served?.port,
    async stop() {
      await served?.close();
      await mp.close();
      await closeSite();
    },
  };
}

/** A management point on a joined server: the site database it is given, its join for everything signed. */
async function runJoined(o: ManagementPointProcessOptions): Promise<RunningManagementPoint> {
  if (!o.databaseUrl) throw new ValidationError("database", "a joined management point needs the site database: give --database postgres://... (or OPENCMG_DATABASE); its data folder holds none");
  const host = new JoinedHost(o.dataDir);
  const fqdn = o.serverFqdn.toLowerCase();
  if (fqdn !== host.server) {
    await host.close();
    throw new ValidationError("server", `this data folder joined the site as ${host.server}, not ${fqdn}`);
  }
  let site: OpenedSite | undefined;
  try {
    // Refused (403) here when the server has no management-point role: before the database is opened.
    const tls = o.tls ?? (await joinedRoleTls(host, "management-point"));
    site = await openSite({ dataDir: o.dataDir, databaseUrl: o.databaseUrl, work: o.work, pino: o.pino, logLevel: o.logLevel, logSizeBytes: o.logSizeBytes, actor: { name: fqdn, via: "join" } });
    const opened = site;
    const deps: ManagementPointDeps = { ...managementPointDeps(opened), tokens: { ...pickTokens(opened), ...joinedClientTokens(host, opened.logs.component(LOG_FILES.mpRegistration)) } };
    return await serve(o, deps, { ...tls, caPem: o.caPem ?? host.caPem }, async () => {
      await host.close();
      await opened.close();
    });
  } catch (e) {
    await host.close();
    await site?.close();
    throw e;
  }
}

/** The token uses a management point records in the database (bulk and ID token uses); signing is the site's. */
function pickTokens(site: OpenedSite): Omit<ManagementPointDeps["tokens"], "issueClientToken"> {
  const t = site.services.tokens;
  return { useBulk: (...a) => t.useBulk(...a), recordIdTokenUse: (...a) => t.recordIdTokenUse(...a), noteIdTokenClient: (...a) => t.noteIdTokenClient(...a), idTokenClient: (...a) => t.idTokenClient(...a) };
}
