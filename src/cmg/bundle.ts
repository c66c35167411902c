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

/** Where an instance's listeners bind, as its start-up file says. */
export type InstanceListeners = Pick<StartupFile, "client" | "tunnel" | "metrics">;

/** The bundle's contents: its shared files (certificates, keys) and one start-up file per instance. */
export interface BundleContent {
  /** File name -> text: server.pem, server.key, tunnel.pem, tunnel.key, site-ca.pem. */
  shared: Record<string, string>;
  /** Start-up files by instance index (each named `instance-INDEX.json`). */
  instances: StartupFile[];
}

/** The listeners of instance `inst` as the CMG's deploy settings place them (the local and external providers). */
function placed(cmg: CmgView, inst: CmgView["instances"][number]): InstanceListeners {
  return {
    // Per instance: on its own address when the CMG names one for it (deploy.instanceAddresses).
    client: { host: inst.listenHost, port: inst.clientPort },
    tunnel: { host: inst.listenHost, port: inst.tunnelPort },
    metrics: inst.metricsPort ? { host: cmg.deploy.metricsHost ?? DEFAULT_METRICS_HOST, port: inst.metricsPort } : null,
  };
}

/**
 * What a CMG's instances start from, in memory (the kubernetes provider puts it in Secrets).
 * `listeners` places an instance's listeners (default: as the CMG's deploy settings say).
 */
export async function cmgBundleContent(site: OpenedSite, cmg: CmgView, listeners: (inst: CmgView["instances"][number]) => InstanceListeners = (inst) => placed(cmg, inst)): Promise<BundleContent> {
  const pki = new SitePki(site.paths.data);
  const server = await site.services.cmgs.serverCertificate(cmg.name);
  const tunnel = await pki.gatewayTunnelCert(cmg.name, [...new Set([cmg.serviceFqdn, cmg.deploy.instanceHost, ...(cmg.deploy.instanceAddresses ?? [])])]);
  // What the site trusts now: the instances apply only settings it signed, from connection points it admits.
  const trust = startupFileSchema.shape.trust.parse(await site.services.cmgTrust.startupTrust(cmg.name));
  return {
    shared: { "server.pem": server.certPem, "server.key": server.keyPem, "tunnel.pem": tunnel.certPem, "tunnel.key": tunnel.keyPem, "site-ca.pem": pki.caPem },
    instances: cmg.instances.map((inst) => ({
      version: 1,
      name: cmg.name,
      index: inst.index,
      serverCertFile: "server.pem",
      serverKeyFile: "server.key",
      tunnelCertFile: "tunnel.pem",
      tunnelKeyFile: "tunnel.key",
      siteCaFile: "site-ca.pem",
      ...listeners(inst),
      trust,
    })),
  };
}

export async function writeCmgBundle(site: OpenedSite, cmg: CmgView, dirInput?: string): Promise<Bundle> {
  const dir = resolve(dirInput ?? join(site.paths.data, "cmg", cmg.name));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const content = await cmgBundleContent(site, cmg);
  for (const [name, body] of Object.entries(content.shared)) writeFileSync(join(dir, name), body, { mode: name.endsWith(".key") ? 0o600 : 0o644 });
  const files = content.instances.map((f) => {
    const file = join(dir, `instance-${f.index}.json`);
    writeFileSync(file, JSON.stringify(f, null, 2) + "\n");
    return file;
  });
  return { dir, files };
}
