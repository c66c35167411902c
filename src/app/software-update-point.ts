/**
 * The software update point's process (`opencmg sup serve`): opens the site, finds or issues the
 * SUP's server certificate from the site CA, and serves the software-update-point role of one site
 * system server (update metadata and content) until stopped, as `opencmg up` does in its process.
 */
import { isIP } from "node:net";
import type { Logger as PinoLogger } from "pino";
import type { LogLevel } from "../logs/cmtrace.ts";
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
  const site = await openSite({ dataDir: o.dataDir, databaseUrl: o.databaseUrl, work: o.work, pino: o.pino, logLevel: o.logLevel });
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
