/**
 * The management point's process (`opencmg mp serve`): opens the site, finds or issues the MP's
 * server certificate, and serves the management-point role of one site system server.
 */
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import type { Logger as PinoLogger } from "pino";
import type { LogLevel } from "../logs/cmtrace.ts";
import { ValidationError } from "../errors.ts";
import { startManagementPoint, type ManagementPoint } from "../roles/mp/server.ts";
import { SitePki } from "../site/site-pki.ts";
import { openSite } from "../site/site.ts";
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
  const site = await openSite({ dataDir: o.dataDir, databaseUrl: o.databaseUrl, work: o.work, pino: o.pino, logLevel: o.logLevel });
  try {
    const pki = new SitePki(site.paths.data);
    if (!o.caPem && !existsSync(`${pki.dir}/site-ca.pem`)) throw new ValidationError("ca", "the site CA is needed", `ca: no site CA in ${pki.dir}; run \`opencmg site init\` or give --ca`);
    const caPem = o.caPem ?? pki.caPem;
    const fqdn = o.serverFqdn.toLowerCase();
    // Listening on one address: clients may name it, so the issued certificate names it too.
    const ips = isIP(o.listen.host) && o.listen.host !== "0.0.0.0" && o.listen.host !== "::" ? [o.listen.host] : [];
    const tls = o.tls ?? (await pki.issue(`mp-${fqdn}`, { commonName: fqdn, usage: "server", dnsNames: [fqdn], ipAddresses: ips }));
    const metrics = new MpMetrics(fqdn, { processMetrics: o.metrics !== undefined });
    const mp = await startManagementPoint({ deps: managementPointDeps(site), serverFqdn: fqdn, listen: o.listen, tls: { ...tls, caPem }, trustedClientRoots: o.trustedClientRoots, metrics });
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
        await site.close();
      },
    };
  } catch (e) {
    await site.close();
    throw e;
  }
}
