/**
 * Writes the start-up bundle of a CMG's instances: certificates, keys (0600) and one start-up file
 * per instance. The local provider starts from it; with the external provider an operator copies
 * it to the hosts that run the instances.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startupFileSchema, type StartupFile } from "../gateway/startup-file.ts";
import { DEFAULT_METRICS_HOST } from "../observe/prometheus.ts";
import type { CmgView } from "../site/services/cmgs.ts";
import type { OpenedSite } from "../site/site.ts";
import { SitePki } from "../site/site-pki.ts";

export interface Bundle {
  dir: string;
  /** One start-up file per instance, by index. */
  files: string[];
}

export async function writeCmgBundle(site: OpenedSite, cmg: CmgView, dirInput?: string): Promise<Bundle> {
  const dir = resolve(dirInput ?? join(site.paths.data, "cmg", cmg.name));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = new SitePki(site.paths.data);
  const server = await site.services.cmgs.serverCertificate(cmg.name);
  const tunnel = await pki.gatewayTunnelCert(cmg.name, [...new Set([cmg.serviceFqdn, cmg.deploy.instanceHost, ...(cmg.deploy.instanceAddresses ?? [])])]);
  const write = (name: string, body: string, mode = 0o644): void => writeFileSync(join(dir, name), body, { mode });
  write("server.pem", server.certPem);
  write("server.key", server.keyPem, 0o600);
  write("tunnel.pem", tunnel.certPem);
  write("tunnel.key", tunnel.keyPem, 0o600);
  write("site-ca.pem", pki.caPem);
  // What the site trusts now: the instances apply only settings it signed, from connection points it admits.
  const trust = startupFileSchema.shape.trust.parse(await site.services.cmgTrust.startupTrust(cmg.name));
  const files = cmg.instances.map((inst) => {
    const f: StartupFile = {
      version: 1,
      name: cmg.name,
      index: inst.index,
      serverCertFile: "server.pem",
      serverKeyFile: "server.key",
      tunnelCertFile: "tunnel.pem",
      tunnelKeyFile: "tunnel.key",
      siteCaFile: "site-ca.pem",
      // Per instance: on its own address when the CMG names one for it (deploy.instanceAddresses).
      client: { host: inst.listenHost, port: inst.clientPort },
      tunnel: { host: inst.listenHost, port: inst.tunnelPort },
      metrics: inst.metricsPort ? { host: cmg.deploy.metricsHost ?? DEFAULT_METRICS_HOST, port: inst.metricsPort } : null,
      trust,
    };
    const file = join(dir, `instance-${inst.index}.json`);
    writeFileSync(file, JSON.stringify(f, null, 2) + "\n");
    return file;
  });
  return { dir, files };
}
