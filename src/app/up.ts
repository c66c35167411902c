/**
 * `opencmg up`: the embedded default. One machine, no set-up beyond `npm ci`: a SQLite site, a test
 * PKI, a management point and a software update point that allow CMG traffic, a local-provider CMG
 * with its connection point, all started in this process. Running it again reuses the same data.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startManagementPoint, type ManagementPoint } from "../roles/mp/server.ts";
import { createCa, issueCert, type CertKeyPem } from "../pki/issue.ts";
import { startSoftwareUpdatePoint } from "../roles/sup/serve.ts";
import { runEmbeddedInstances } from "./embedded-instances.ts";
import { runConnectionPointRole, type RunningConnectionPoint } from "../roles/cmg-connection-point/role.ts";
import { startSiteServer, type RunningSiteServer } from "./site-server.ts";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { SitePki } from "../site/site-pki.ts";
import { managementPointDeps, softwareUpdatePointDeps } from "./role-deps.ts";
import { connectionPointRoleDeps } from "./role-deps.ts";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { checkPortsFree, type PlannedPort } from "./port-check.ts";
import type { LogLevel } from "../logs/cmtrace.ts";

export const UP_SERVER = "site.opencmg.local";
export const UP_CMG = "opencmg";
const CMG_FQDN = "cmg.opencmg.local";

export interface UpPorts {
  api: number;
  mp: number;
  /** Client port of CMG instance 0 (instance i: + i). */
  client: number;
  /** Tunnel port of CMG instance 0. */
  tunnel: number;
}
export const DEFAULT_UP_PORTS: UpPorts = { api: 8240, mp: 8443, client: 10443, tunnel: 10140 };

/** The option that sets each port of `opencmg up`. */
export const UP_PORT_FLAGS: Record<keyof UpPorts, string> = { api: "--api-port", mp: "--mp-port", client: "--client-port", tunnel: "--tunnel-port" };

export interface UpFacts {
  siteUrl: string;
  /** The administration console (same listener as the admin API). */
  consoleUrl: string;
  adminToken: string;
  mpUrl: string;
  cmgUrl: string;
  internetMpUrl: string;
  /** The command that installs a client reaching the site through the gateway; `--client-dir DIR` may be appended. */
  clientInstall: string[];
  dataDir: string;
  /** The ports of this run: the next run without port options uses them again. */
  ports: UpPorts;
}

export interface RunningUp {
  facts: UpFacts;
  stop(): Promise<void>;
}

/** The test PKI of the embedded default: a root for clients, the CMG's server certificate, one client. */
async function testPki(dir: string): Promise<{ rootPem: string; server: CertKeyPem; clientCert: string; clientKey: string; rootFile: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => join(dir, n);
  if (!existsSync(f("client.key"))) {
    const root = await createCa({ commonName: "OpenCMG Test Client Root CA" });
    const server = await issueCert({ issuer: root, commonName: CMG_FQDN, dnsNames: [CMG_FQDN, "localhost"], ipAddresses: ["127.0.0.1"], usage: "server" });
    const client = await issueCert({ issuer: root, commonName: "OPENCMG-TEST-PC", usage: "client" });
    writeFileSync(f("root-ca.pem"), root.certPem);
    writeFileSync(f("root-ca.key"), root.keyPem, { mode: 0o600 });
    writeFileSync(f("cmg-server.pem"), server.certPem);
    writeFileSync(f("cmg-server.key"), server.keyPem, { mode: 0o600 });
    writeFileSync(f("client.pem"), client.certPem);
    writeFileSync(f("client.key"), client.keyPem, { mode: 0o600 });
  }
  return {
    rootPem: readFileSync(f("root-ca.pem"), "utf8"),
    server: { certPem: readFileSync(f("cmg-server.pem"), "utf8"), keyPem: readFileSync(f("cmg-server.key"), "utf8") },
    clientCert: f("client.pem"),
    clientKey: f("client.key"),
    rootFile: f("root-ca.pem"),
  };
}

async function waitUntilReady(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new OpenCmgError("internal", "CMG_NOT_READY", `the CMG ${UP_CMG} was not Ready within ${timeoutMs / 1000} s; see SMS_Cloud_ProxyConnector.log and CMGService.log in the data folder's logs`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The ports the last run in `dataDir` used (from its up.json), if any. */
function rememberedPorts(dataDir: string): Partial<UpPorts> {
  try {
    const facts = JSON.parse(readFileSync(join(dataDir, "up.json"), "utf8")) as Partial<UpFacts>;
    const p = facts.ports;
    if (!p || typeof p !== "object") return {};
    return Object.fromEntries(Object.entries(p).filter(([k, v]) => k in DEFAULT_UP_PORTS && Number.isInteger(v) && v > 0 && v < 65536));
  } catch {
    return {};
  }
}

/** Every port up listens on, each with the option that changes it; the CMG's instances as given (the CMG may have more than one). */
function plannedPorts(ports: UpPorts, instances: readonly { index: number; clientPort: number; tunnelPort: number }[]): PlannedPort[] {
  const at = (port: number, what: string, flag: string, derived?: string): PlannedPort => ({ host: LOOPBACK, port, what, flag, ...(derived ? { derived } : {}) });
  return [
    at(ports.api, "admin API", UP_PORT_FLAGS.api),
    at(ports.mp, "management point", UP_PORT_FLAGS.mp),
    at(ports.mp + 1, "software update point", UP_PORT_FLAGS.mp, `${UP_PORT_FLAGS.mp} + 1`),
    ...instances.flatMap((i) => [
      at(i.clientPort, `CMG instance ${i.index}, clients`, UP_PORT_FLAGS.client, i.index > 0 ? `${UP_PORT_FLAGS.client} + ${i.index}` : undefined),
      at(i.tunnelPort, `CMG instance ${i.index}, connection points`, UP_PORT_FLAGS.tunnel, i.index > 0 ? `${UP_PORT_FLAGS.tunnel} + ${i.index}` : undefined),
    ]),
  ];
}

const LOOPBACK = "127.0.0.1";

/**
 * Creates what is missing (idempotent), then starts everything. `ports`: the ones asked for on
 * the command line; the others are those of the last run in the data folder, else the defaults.
 * Every port is checked before anything is written: a busy one throws a ValidationError naming
 * the option that changes it, and leaves the data folder as it was (or absent).
 */
export async function up(o: { dataDir: string; databaseUrl?: string | undefined; ports?: Partial<UpPorts>; logLevel?: LogLevel; logSizeBytes?: number; onStep?: (s: string) => void }): Promise<RunningUp> {
  const step = o.onStep ?? (() => undefined);
  const dataDir = resolve(o.dataDir);
  const asked = o.ports ?? {};
  const ports: UpPorts = { ...DEFAULT_UP_PORTS, ...rememberedPorts(dataDir), ...asked };
  // A new CMG has one instance on the client and tunnel ports; an existing one is checked below, once read.
  await checkPortsFree(plannedPorts(ports, [{ index: 0, clientPort: ports.client, tunnelPort: ports.tunnel }]));
  const site: OpenedSite = await openSite({ dataDir, databaseUrl: o.databaseUrl, work: "up", logLevel: o.logLevel, logSizeBytes: o.logSizeBytes });
  const running: { close(): Promise<void> }[] = [];
  try {
    const existing = (await site.services.cmgs.list()).some((c) => c.name === UP_CMG) ? await site.services.cmgs.show(UP_CMG) : undefined;
    if (existing) {
      // The CMG keeps the ports it was created with: a different one asked for cannot apply.
      const { clientPortBase, tunnelPortBase } = existing.deploy;
      for (const [key, stored] of [["client", clientPortBase], ["tunnel", tunnelPortBase]] as const) {
        const want = asked[key];
        if (want !== undefined && want !== stored) {
          throw new ValidationError(
            `${key}Port`,
            `the CMG ${UP_CMG} in this data folder uses ${key} port ${stored}`,
            `${key}Port: the CMG ${UP_CMG} in ${dataDir} was created with ${key} port ${stored}; leave out ${UP_PORT_FLAGS[key]} (or give ${stored}), or use another data folder`,
          );
        }
      }
      ports.client = clientPortBase;
      ports.tunnel = tunnelPortBase;
      // Still before anything is written: its other instances' ports too.
      await checkPortsFree(plannedPorts(ports, existing.instances));
    }
    const top = await site.services.sites.top();
    const { adminToken } = await initSite(site, { code: top?.code ?? "P01", name: top?.name ?? "OpenCMG embedded site" });
    const pki = await testPki(join(dataDir, "pki", "test"));
    const { servers, roles, cmgs } = site.services;
    const mpUrl = `https://127.0.0.1:${ports.mp}`;
    if (!(await servers.list()).some((s) => s.fqdn === UP_SERVER)) await servers.add({ fqdn: UP_SERVER, siteServer: true });
    const have = (kind: string) => roles.list(UP_SERVER).then((l) => l.find((r) => r.kind === kind));
    const mpRole = (await have("management-point")) ?? (await roles.add(UP_SERVER, "management-point", { allowCmgTraffic: true, internalUrl: mpUrl }));
    if (mpRole.kind === "management-point" && (mpRole.settings.internalUrl !== mpUrl || !mpRole.settings.allowCmgTraffic)) await roles.set(UP_SERVER, "management-point", { allowCmgTraffic: true, internalUrl: mpUrl });
    const supUrl = `https://127.0.0.1:${ports.mp + 1}`;
    const supRole = (await have("software-update-point")) ?? (await roles.add(UP_SERVER, "software-update-point", { allowCmgTraffic: true, internalUrl: supUrl }));
    if (supRole.kind === "software-update-point" && (supRole.settings.internalUrl !== supUrl || !supRole.settings.allowCmgTraffic)) await roles.set(UP_SERVER, "software-update-point", { allowCmgTraffic: true, internalUrl: supUrl });
    if (!(await cmgs.list()).some((c) => c.name === UP_CMG)) {
      step("creating the CMG");
      await cmgs.create({
        name: UP_CMG,
        serverCertPem: pki.server.certPem,
        serverKeyPem: pki.server.keyPem,
        trustedRoots: [pki.rootPem],
        // The embedded test PKI publishes no CRL; a real deployment keeps revocation checking on.
        crlCheck: false,
        provider: "local",
        deploy: { listenHost: "127.0.0.1", publicHost: "localhost", instanceHost: "127.0.0.1", clientPortBase: ports.client, tunnelPortBase: ports.tunnel, metricsPortBase: 0 },
      });
    }
    if (!(await have("cmg-connection-point"))) await roles.add(UP_SERVER, "cmg-connection-point", { cmgName: UP_CMG });

    step("starting the admin API");
    // Plain HTTP on 127.0.0.1 by choice: everything runs on this one machine, browsers treat
    // http://localhost as secure (the Secure session cookie is kept), and a first run opens with no
    // certificate warning to click through. `site serve` is where other machines come in, over TLS.
    const api: RunningSiteServer = await startSiteServer({ site, listen: { host: "127.0.0.1", port: ports.api }, transport: { kind: "http" } });
    running.push(api);
    step("starting the management point");
    const sitePki = new SitePki(dataDir);
    const mpTls = await sitePki.issue(`mp-${UP_SERVER}`, { commonName: UP_SERVER, usage: "server", dnsNames: [UP_SERVER, "localhost"], ipAddresses: ["127.0.0.1"] });
    const mp: ManagementPoint = await startManagementPoint({ deps: managementPointDeps(site), serverFqdn: UP_SERVER, listen: { host: "127.0.0.1", port: ports.mp }, tls: { ...mpTls, caPem: sitePki.caPem }, trustedClientRoots: [pki.rootPem, sitePki.caPem] });
    running.push(mp);
    step("starting the software update point");
    const supTls = await sitePki.issue(`sup-${UP_SERVER}`, { commonName: UP_SERVER, usage: "server", dnsNames: [UP_SERVER, "localhost"], ipAddresses: ["127.0.0.1"] });
    running.push(await startSoftwareUpdatePoint({ deps: softwareUpdatePointDeps(site), serverFqdn: UP_SERVER, listen: { host: "127.0.0.1", port: ports.mp + 1 }, tls: supTls }));
    step("starting the gateway");
    const view = await cmgs.show(UP_CMG);
    // The instances follow the CMG at the site: a CMG stopped with `opencmg cmg stop` stays stopped.
    const instances = await runEmbeddedInstances(site, UP_CMG);
    running.push(instances);
    step("starting the connection point");
    const cp: RunningConnectionPoint = await runConnectionPointRole(connectionPointRoleDeps(site), UP_SERVER, { healthIntervalMs: 10_000 });
    running.unshift({ close: () => cp.stop() }); // the connection point drains first
    if (view.runState === "running") {
      await cp.cp.waitConnected({ timeoutMs: 30_000 });
      // "Up" means clients are told about the CMG: the location answer lists it once the connection
      // point's health report has made it Ready at the site, which follows the tunnels by a moment.
      await waitUntilReady(async () => (await cmgs.show(UP_CMG)).status === "Ready", 30_000);
    } else {
      step(`the CMG ${UP_CMG} is ${view.runState}: \`opencmg cmg start ${UP_CMG}\` starts it`);
    }

    const cmgUrl = view.instances[0]!.clientUrl;
    const internetMpUrl = `${cmgUrl}/CCM_Proxy_MutualAuth/${mp.roleId}`;
    const facts: UpFacts = {
      siteUrl: api.url,
      consoleUrl: api.consoleUrl,
      adminToken,
      mpUrl: mp.url,
      cmgUrl,
      internetMpUrl,
      clientInstall: ["npx", "opencmg", "client", "install", "--mp", internetMpUrl, "--always-internet", "--cert", pki.clientCert, "--key", pki.clientKey, "--ca", pki.rootFile],
      dataDir,
      ports,
    };
    // Whole or not at all (written aside, then renamed): scripts and tests wait for this file to appear.
    const upJson = join(dataDir, "up.json");
    writeFileSync(`${upJson}.tmp`, JSON.stringify(facts, null, 2) + "\n", { mode: 0o600 });
    renameSync(`${upJson}.tmp`, upJson);
    return {
      facts,
      async stop() {
        for (const r of running) await r.close().catch(() => undefined);
        await site.close();
      },
    };
  } catch (e) {
    for (const r of running) await r.close().catch(() => undefined);
    await site.close();
    throw e;
  }
}
