/**
 * The software update point's process (`opencmg sup serve`): serves the software-update-point role
 * of one site system server (update metadata and content) until stopped, as `opencmg up` does in
 * its process. With the site's data folder it opens the site and issues its server certificate from
 * the site CA. In a joined server's data folder (`opencmg server join`) it opens no database and
 * holds no site key: its role, its settings and the update metadata come from the site over the
 * join's mutual TLS, its server certificate is issued by the site for the host key, and the content
 * it serves is the content library of its own data folder.
 */
import { join } from "node:path";
import { isIP } from "node:net";
import type { Logger as PinoLogger } from "pino";
import { ValidationError } from "../errors.ts";
import { isJoined, JoinedHost } from "../join/client.ts";
import { joinedRoleTls, joinedSoftwareUpdatePointSite } from "../join/role-client.ts";
import { LogSet, type LogLevel } from "../logs/cmtrace.ts";
import { LOG_FILES } from "../logs/files.ts";
import { ContentLibrary } from "../roles/sup/content-library.ts";
import { startSoftwareUpdatePoint, type SoftwareUpdatePointServer } from "../roles/sup/serve.ts";
import { SitePki } from "../site/site-pki.ts";
import { openSite } from "../site/site.ts";
import { softwareUpdatePointDeps } from "./role-deps.ts";

export interface SoftwareUpdatePointProcessOptions {
  dataDir: string;
  databaseUrl?: string | undefined;
  /** What this process does, named to other writers waiting on the database (`opencmg sup serve`). */
  work?: string | undefined;
  pino?: PinoLogger | undefined;
  logLevel?: LogLevel | undefined;
  /** The size at which each CMTrace file rotates, in bytes (default 2.5 MB). */
  logSizeBytes?: number | undefined;
  serverFqdn: string;
  listen: { host: string; port: number };
  /** Server certificate and key (PEM); issued by the site CA for the server when left out. */
  tls?: { certPem: string; keyPem: string } | undefined;
}

export interface RunningSoftwareUpdatePoint {
  sup: SoftwareUpdatePointServer;
  stop(): Promise<void>;
}

export async function runSoftwareUpdatePoint(o: SoftwareUpdatePointProcessOptions): Promise<RunningSoftwareUpdatePoint> {
  if (isJoined(o.dataDir)) return runJoined(o);
  const site = await openSite({ dataDir: o.dataDir, databaseUrl: o.databaseUrl, work: o.work, pino: o.pino, logLevel: o.logLevel, logSizeBytes: o.logSizeBytes });
  try {
    const fqdn = o.serverFqdn.toLowerCase();
    // Listening on one address: clients may name it, so the issued certificate names it too.
    const ips = isIP(o.listen.host) && o.listen.host !== "0.0.0.0" && o.listen.host !== "::" ? [o.listen.host] : [];
    const tls = o.tls ?? (await new SitePki(site.paths.data).issue(`sup-${fqdn}`, { commonName: fqdn, usage: "server", dnsNames: [fqdn], ipAddresses: ips }));
    const sup = await startSoftwareUpdatePoint({ deps: softwareUpdatePointDeps(site), serverFqdn: fqdn, listen: o.listen, tls });
    return {
      sup,
      async stop() {
        await sup.close();
        await site.close();
      },
    };
  } catch (e) {
    await site.close();
    throw e;
  }
}

async function runJoined(o: SoftwareUpdatePointProcessOptions): Promise<RunningSoftwareUpdatePoint> {
  if (o.databaseUrl) throw new ValidationError("database", "a joined software update point reads the site over its join, not the database: leave out --database (and OPENCMG_DATABASE)");
  const host = new JoinedHost(o.dataDir);
  const logs = new LogSet({ dir: join(o.dataDir, "logs"), pino: o.pino, ...(o.logLevel ? { level: o.logLevel } : {}), ...(o.logSizeBytes ? { maxBytes: o.logSizeBytes } : {}) });
  try {
    const fqdn = o.serverFqdn.toLowerCase();
    if (fqdn !== host.server) throw new ValidationError("server", `this data folder joined the site as ${host.server}, not ${fqdn}`);
    const site = joinedSoftwareUpdatePointSite(host);
    const config = await site.config();
    const tls = o.tls ?? (await joinedRoleTls(host, "software-update-point"));
    const library = new ContentLibrary(join(o.dataDir, "content"));
    const sup = await startSoftwareUpdatePoint({ deps: { roles: site.roles, updates: site.updates, logs, library }, serverFqdn: fqdn, listen: o.listen, tls });
    logs.component(LOG_FILES.supServe).info(`Joined software update point ${fqdn}: role ${config.roleId}, upstream update source ${config.settings.upstreamUrl ?? "(none set)"}, settings and update metadata from ${host.site} over the join.`);
    return {
      sup,
      async stop() {
        await sup.close();
        await host.close();
        logs.close();
      },
    };
  } catch (e) {
    await host.close();
    logs.close();
    throw e;
  }
}
