/**
 * A whole CMG data path on loopback for tests: N gateway instances, M connection points, a plain
 * HTTP backend standing in for the management point / software update point, a CRL server, and
 * the test PKI. Everything is real (TLS, HTTP/2, sockets); nothing leaves 127.0.0.1.
 *
 *   const h = await startCmgHarness({ instances: 2, connectionPoints: 2 });
 *   const r = await h.get(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client });
 *   await h.close();
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LogSet, parseLines, type ParsedLine } from "../../src/logs/cmtrace.ts";
import { issueCert, type IssuedCert } from "../../src/pki/issue.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../src/gateway/instance.ts";
import type { GatewayLimitsInput } from "../../src/gateway/config.ts";
import type { ClientAuthenticator } from "../../src/gateway/auth/client-cert.ts";
import type { CmgSettings, TokenTrust } from "../../src/wire/tunnel/protocol.ts";
import {
  connectionPointLogs,
  startConnectionPoint,
  type ConnectionPoint,
  type ConnectionPointOptions,
  type HealthReport,
  type TrafficReport,
} from "../../src/connection-point/connection-point.ts";
import { startBackend, startCrlServer, type CrlServer, type TestBackend } from "./cmg-backend.ts";
import { Network } from "./cmg-network.ts";
import { requestH1, requestH2, type HttpResult, type RequestOptions } from "./cmg-requests.ts";
import { makeTestPki, type TestPki } from "./pki-fixtures.ts";
import { admitted, makeSettingsSigner, startupTrust, type SettingsSigner } from "./settings-signer.ts";
import type { SignedSettings } from "../../src/wire/tunnel/signed-settings.ts";
export { until } from "./until.ts";

export { startBackend, startCrlServer, type BackendRequest, type CrlServer, type TestBackend } from "./cmg-backend.ts";
export type { HttpResult, RequestOptions } from "./cmg-requests.ts";

/** Role IDs of the URL map (digits, as the platform's role IDs are). */
export const ROLES = {
  /** Management point, allows CMG traffic, backend at "/". */
  mp: "72057594037927941",
  /** Software update point, allows CMG traffic, backend under "/sup". */
  sup: "72057594037927942",
  /** Management point that does NOT allow CMG traffic. */
  closed: "72057594037927943",
} as const;

export interface HarnessOptions {
  instances?: number;
  connectionPoints?: number;
  connectionsPerInstance?: number;
  crlCheck?: boolean;
  limits?: GatewayLimitsInput;
  /** How connection point j dials (default direct). */
  dial?: (j: number) => ((host: string, port: number) => Promise<Socket>) | undefined;
  /** Extra options for every connection point. */
  connector?: Partial<ConnectionPointOptions>;
  /** Internal URLs by role ID, instead of the test backend (e.g. a real nginx). */
  backends?: Record<string, string>;
  /** More client authenticators for the instances, by URL scheme segment. */
  authenticators?: Record<string, ClientAuthenticator>;
  /** Token trust in the settings (site signing keys, audience, blocked clients, directory). */
  tokens?: TokenTrust;
}

export interface CmgHarness {
  pki: TestPki;
  roles: typeof ROLES;
  backend: TestBackend;
  /** The settings the connection points carry (signed by `signer` when they start). */
  settings: CmgSettings;
  /** The site's settings-signing key, as the instances trust it. */
  signer: SettingsSigner;
  /** `settings` (or `s`) signed as the site signs them. */
  sign(s?: CmgSettings): SignedSettings;
  /** Gateway instances by index (null while stopped). */
  instances: (GatewayInstance | null)[];
  /** Connection points by index (null while stopped). */
  connectionPoints: (ConnectionPoint | null)[];
  /** Tunnel client certificates of the connection points (site CA), by index. */
  tunnelCerts: IssuedCert[];
  /** Client and tunnel ports of instance i (stable across restarts). */
  ports: { client: number; tunnel: number }[];
  health: HealthReport[][];
  traffic: TrafficReport[][];
  /** Switch the CRL server off (every CRL URL answers 503) or on. */
  crlServer: { base: string; available: boolean; hits: number };
  logDir: string;
  startInstance(i: number): Promise<GatewayInstance>;
  stopInstance(i: number, graceMs?: number): Promise<void>;
  startConnectionPoint(j: number, extra?: Partial<ConnectionPointOptions>): Promise<ConnectionPoint>;
  /** Kills connection point j as a crash would: its TCP connections are destroyed (no GOAWAY), then it stops. */
  killConnectionPoint(j: number): Promise<void>;
  stopConnectionPoint(j: number): Promise<void>;
  /** Resolves once every running instance has a ready tunnel from every running connection point. */
  waitReady(timeoutMs?: number): Promise<void>;
  request(i: number, path: string, o?: RequestOptions): Promise<HttpResult>;
  /** Lines of a log file: `who` is "gw<i>" or "cp<j>". */
  logLines(who: string, file: string): ParsedLine[];
  /** Issues a client certificate from the test intermediate (e.g. with a CRL URL of your own). */
  issueClient(o: { commonName: string; crlUrl?: string }): Promise<IssuedCert>;
  close(): Promise<void>;
}

/**
 * @example
 * const h = await startCmgHarness({ instances: 2, connectionPoints: 2 });
 */
export async function startCmgHarness(o: HarnessOptions = {}): Promise<CmgHarness> {
  const nInstances = o.instances ?? 2;
  const nCps = o.connectionPoints ?? 2;
  const crlServer = await startCrlServer();
  const pki = await makeTestPki({ crlBaseUrl: crlServer.base });
  crlServer.files = pki.crlFiles;
  const backend = await startBackend();
  // The tunnel listener presents a certificate of the site CA, so connection points trust the site CA alone.
  const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: "cmg.opencmg.test", dnsNames: ["cmg.opencmg.test"], ipAddresses: ["127.0.0.1"], usage: "server" });
  // Named as the site CA names them (`opencmg-cp:<fqdn>`); both ends call the connection point by its FQDN.
  const tunnelCerts = await Promise.all(Array.from({ length: nCps }, (_, j) => issueCert({ issuer: pki.siteCa, commonName: `opencmg-cp:cp${j + 1}.opencmg.test`, usage: "client" })));
  const h = new Harness(o, { nInstances, nCps, pki, backend, crlServer, tunnelServer, tunnelCerts });
  for (let i = 0; i < nInstances; i++) await h.startInstance(i);
  for (let j = 0; j < nCps; j++) await h.startConnectionPoint(j);
  return h;
}

interface HarnessParts {
  nInstances: number;
  nCps: number;
  pki: TestPki;
  backend: TestBackend;
  crlServer: CrlServer;
  tunnelServer: IssuedCert;
  tunnelCerts: IssuedCert[];
}

function testSettings(pki: TestPki, crlCheck: boolean, signer: SettingsSigner, cps: IssuedCert[]): CmgSettings {
  return {
    revision: 1,
    cmg: "cmg1",
    settingsKeys: signer.keys,
    connectionPoints: cps.map(admitted),
    trustedRoots: pki.trust.roots,
    intermediates: pki.trust.intermediates,
    crlCheck,
    urlMap: {
      [ROLES.mp]: { kind: "mp", allowCmgTraffic: true },
      [ROLES.sup]: { kind: "sup", allowCmgTraffic: true },
      [ROLES.closed]: { kind: "mp", allowCmgTraffic: false },
    },
  };
}

class Harness implements CmgHarness {
  readonly pki: TestPki;
  readonly roles = ROLES;
  readonly backend: TestBackend;
  settings: CmgSettings;
  readonly signer = makeSettingsSigner();
  instances: (GatewayInstance | null)[];
  connectionPoints: (ConnectionPoint | null)[];
  tunnelCerts: IssuedCert[];
  ports: { client: number; tunnel: number }[];
  health: HealthReport[][];
  traffic: TrafficReport[][];
  crlServer: CrlServer;
  readonly logDir = mkdtempSync(join(tmpdir(), "opencmg-cmg-"));
  private readonly tunnelServer: IssuedCert;
  private readonly backends: Record<string, string>;
  // Each connection point reaches the instances through its own little "network" (a TCP relay),
  // so a test can cut its connections the way a crash or a network failure would, on both ends.
  private readonly networks: Network[] = [];
  private readonly logSets: LogSet[] = [];

  constructor(
    private readonly o: HarnessOptions,
    p: HarnessParts,
  ) {
    this.pki = p.pki;
    this.backend = p.backend;
    this.crlServer = p.crlServer;
    this.tunnelServer = p.tunnelServer;
    this.tunnelCerts = p.tunnelCerts;
    this.settings = { ...testSettings(p.pki, o.crlCheck ?? true, this.signer, p.tunnelCerts), ...(o.tokens ? { tokens: o.tokens } : {}) };
    this.backends = { [ROLES.mp]: p.backend.url, [ROLES.sup]: `${p.backend.url}/sup`, [ROLES.closed]: p.backend.url, ...o.backends };
    this.instances = Array.from({ length: p.nInstances }, () => null);
    this.connectionPoints = Array.from({ length: p.nCps }, () => null);
    this.ports = Array.from({ length: p.nInstances }, () => ({ client: 0, tunnel: 0 }));
    this.health = Array.from({ length: p.nCps }, () => []);
    this.traffic = Array.from({ length: p.nCps }, () => []);
  }

  sign(s: CmgSettings = this.settings): SignedSettings {
    return this.signer.sign(s);
  }

  private network(j: number): Network {
    return (this.networks[j] ??= new Network());
  }

  private logSetFor(who: string): LogSet {
    const l = new LogSet({ dir: join(this.logDir, who) });
    this.logSets.push(l);
    return l;
  }

  async startInstance(i: number): Promise<GatewayInstance> {
    const inst = await startGatewayInstance(
      {
        name: "cmg1",
        index: i,
        serverCert: this.pki.server,
        client: { host: "127.0.0.1", port: this.ports[i]!.client },
        tunnel: { host: "127.0.0.1", port: this.ports[i]!.tunnel, siteCaPem: this.pki.siteCa.certPem, cert: this.tunnelServer },
        trust: startupTrust(this.signer.keys, this.tunnelCerts),
        metrics: { host: "127.0.0.1", port: 0 },
        limits: { tunnelPingMs: 2000, ...this.o.limits },
      },
      { log: gatewayLogs(this.logSetFor(`gw${i}`)), ...(this.o.authenticators ? { authenticators: this.o.authenticators } : {}) },
    );
    this.ports[i] = { client: inst.clientPort, tunnel: inst.tunnelPort };
    this.instances[i] = inst;
    return inst;
  }

  async stopInstance(i: number, graceMs = 1000): Promise<void> {
    const inst = this.instances[i];
    this.instances[i] = null;
    await inst?.stop({ graceMs });
  }

  async startConnectionPoint(j: number, extra: Partial<ConnectionPointOptions> = {}): Promise<ConnectionPoint> {
    const pki = this.pki;
    this.tunnelCerts[j] ??= await issueCert({ issuer: pki.siteCa, commonName: `opencmg-cp:cp${j + 1}.opencmg.test`, usage: "client" });
    const cert = this.tunnelCerts[j]!;
    const cp = await startConnectionPoint({
      name: `cp${j + 1}.opencmg.test`,
      instances: this.ports.map((p) => ({ host: "127.0.0.1", port: p.tunnel })),
      dial: this.o.dial?.(j) ?? ((host: string, port: number): Promise<Socket> => this.network(j).dial(host, port)),
      tls: { certPem: cert.certPem, keyPem: cert.keyPem, siteCaPem: pki.siteCa.certPem },
      connectionsPerInstance: this.o.connectionsPerInstance ?? 2,
      settings: this.sign(),
      backends: this.backends,
      log: connectionPointLogs(this.logSetFor(`cp${j}`)),
      onHealth: (r) => void (this.health[j] ??= []).push(r),
      onTraffic: (r) => void (this.traffic[j] ??= []).push(r),
      reconnect: { minDelayMs: 50, maxDelayMs: 500 },
      dialTimeoutMs: 5000,
      pingMs: 2000,
      metrics: { host: "127.0.0.1", port: 0 },
      ...this.o.connector,
      ...extra,
    });
    this.connectionPoints[j] = cp;
    return cp;
  }

  async killConnectionPoint(j: number): Promise<void> {
    const cp = this.connectionPoints[j];
    this.connectionPoints[j] = null;
    // As a crash would: its TCP connections die first (no GOAWAY, no drain), then it stops.
    this.networks[j]?.cut();
    await cp?.stop({ drainMs: 0 });
  }

  async stopConnectionPoint(j: number): Promise<void> {
    const cp = this.connectionPoints[j];
    this.connectionPoints[j] = null;
    await cp?.stop({ drainMs: 2000 });
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    const names = this.connectionPoints.map((cp, j) => (cp ? `cp${j + 1}.opencmg.test` : null)).filter((n): n is string => n !== null);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = this.instances.every((inst) => {
        if (!inst) return true;
        const s = inst.status();
        return names.every((n) => (s.connectionPoints[n] ?? 0) > 0);
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`harness not ready: ${JSON.stringify(this.instances.map((i) => i?.status().connectionPoints))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  request(i: number, path: string, ro: RequestOptions = {}): Promise<HttpResult> {
    return (ro.h2 ? requestH2 : requestH1)(this.ports[i]!.client, path, this.pki.root.certPem, ro);
  }

  logLines(who: string, file: string): ParsedLine[] {
    const p = join(this.logDir, who, file);
    return existsSync(p) ? parseLines(readFileSync(p, "utf8")) : [];
  }

  issueClient(c: { commonName: string; crlUrl?: string }): Promise<IssuedCert> {
    return issueCert({ issuer: this.pki.intermediate, commonName: c.commonName, usage: "client", ...(c.crlUrl ? { crlUrl: c.crlUrl } : {}) });
  }

  async close(): Promise<void> {
    await Promise.all(this.connectionPoints.map((_, j) => this.killConnectionPoint(j)));
    await Promise.all(this.instances.map((_, i) => this.stopInstance(i, 0)));
    for (const n of this.networks) await n?.close();
    await this.backend.close();
    await this.crlServer.close();
    for (const l of this.logSets) l.close();
    rmSync(this.logDir, { recursive: true, force: true });
  }
}
