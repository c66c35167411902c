/**
 * A whole CMG data path on loopback for tests: N gateway instances, M connection points, a plain
 * HTTP backend standing in for the management point / software update point, a CRL server, and
 * the test PKI. Everything is real (TLS, HTTP/2, sockets); nothing leaves 127.0.0.1.
 *
 *   const h = await startCmgHarness({ instances: 2, connectionPoints: 2 });
 *   const r = await h.get(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client });
 *   await h.close();
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LogSet, parseLines, type ParsedLine } from "../../src/logs/cmtrace.ts";
import { issueCert, type CertKeyPem, type IssuedCert } from "../../src/pki/issue.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../src/gateway/instance.ts";
import type { GatewayLimitsInput } from "../../src/gateway/config.ts";
import type { ClientAuthenticator } from "../../src/gateway/auth/client-cert.ts";
import type { CmgSettings } from "../../src/wire/tunnel/protocol.ts";
import {
  connectionPointLogs,
  startConnectionPoint,
  type ConnectionPoint,
  type ConnectionPointOptions,
  type HealthReport,
  type TrafficReport,
} from "../../src/connection-point/connection-point.ts";
import { makeTestPki, type TestPki } from "./pki-fixtures.ts";

/**
 * Waits until `cond` holds, looking every 10 ms; fails with `what` after `timeoutMs`. The bound is
 * generous (CI machines are slow and busy): only a broken test ever waits for it.
 *
 *   await until("revision 2 in force", () => h.instances[0]!.status().settingsRevision === 2);
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Role IDs of the URL map (digits, as the platform's role IDs are). */
export const ROLES = {
  /** Management point, allows CMG traffic, backend at "/". */
  mp: "72057594037927941",
  /** Software update point, allows CMG traffic, backend under "/sup". */
  sup: "72057594037927942",
  /** Management point that does NOT allow CMG traffic. */
  closed: "72057594037927943",
} as const;

/** What the backend saw of one request. */
export interface BackendRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
}

/**
 * The stand-in management point. Routes (under any prefix):
 *   /echo...          JSON { method, url, headers, bodyBytes } after reading the whole body
 *   /bytes/<n>        n bytes, streamed in 64 KiB chunks with backpressure (never in memory at once)
 *   /hold/<key>       sends nothing until release(key) (for failover while a request is in flight)
 *   anything else     same as /echo
 */
export interface TestBackend {
  url: string;
  port: number;
  requests: BackendRequest[];
  /** Responses whose connection closed before the whole response was written (the request was cancelled). */
  readonly closedEarly: number;
  /** Answers the held requests with `key` (200, body "released"). */
  release(key: string): void;
  /** Resolves when a request for /hold/<key> has arrived. */
  held(key: string): Promise<void>;
  close(): Promise<void>;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** "h2" or "http/1.1" as negotiated. */
  protocol: string;
}

export interface RequestOptions {
  /** Client certificate to present (null: none). */
  cert?: CertKeyPem | null;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Use HTTP/2 (default HTTP/1.1). */
  h2?: boolean;
  /** Gives up after this (default 30 s) so a broken gateway fails the test instead of hanging it. */
  timeoutMs?: number;
}

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
  /** More client authenticators for the instances, by URL scheme segment. */
  authenticators?: Record<string, ClientAuthenticator>;
}

export interface CmgHarness {
  pki: TestPki;
  roles: typeof ROLES;
  backend: TestBackend;
  settings: CmgSettings;
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
  const logDir = mkdtempSync(join(tmpdir(), "opencmg-cmg-"));

  const crlServer = await startCrlServer();
  const pki = await makeTestPki({ crlBaseUrl: crlServer.base });
  crlServer.files = pki.crlFiles;
  const backend = await startBackend();
  // The tunnel listener presents a certificate of the site CA, so connection points trust the site CA alone.
  const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: "cmg.opencmg.test", dnsNames: ["cmg.opencmg.test"], ipAddresses: ["127.0.0.1"], usage: "server" });
  const tunnelCerts = await Promise.all(
    Array.from({ length: nCps }, (_, j) => issueCert({ issuer: pki.siteCa, commonName: `cp${j + 1}.opencmg.test`, usage: "client" })),
  );
  const settings: CmgSettings = {
    revision: 1,
    trustedRoots: pki.trust.roots,
    intermediates: pki.trust.intermediates,
    crlCheck: o.crlCheck ?? true,
    urlMap: {
      [ROLES.mp]: { kind: "mp", allowCmgTraffic: true },
      [ROLES.sup]: { kind: "sup", allowCmgTraffic: true },
      [ROLES.closed]: { kind: "mp", allowCmgTraffic: false },
    },
  };
  const backends = { [ROLES.mp]: backend.url, [ROLES.sup]: `${backend.url}/sup`, [ROLES.closed]: backend.url };

  // Each connection point reaches the instances through its own little "network" (a TCP relay),
  // so a test can cut its connections the way a crash or a network failure would, on both ends.
  const networks: Network[] = [];
  const network = (j: number): Network => (networks[j] ??= new Network());

  const logSets: LogSet[] = [];
  const logSetFor = (who: string): LogSet => {
    const l = new LogSet({ dir: join(logDir, who) });
    logSets.push(l);
    return l;
  };

  const h: CmgHarness = {
    pki,
    roles: ROLES,
    backend,
    settings,
    instances: Array.from({ length: nInstances }, () => null),
    connectionPoints: Array.from({ length: nCps }, () => null),
    tunnelCerts,
    ports: Array.from({ length: nInstances }, () => ({ client: 0, tunnel: 0 })),
    health: Array.from({ length: nCps }, () => []),
    traffic: Array.from({ length: nCps }, () => []),
    crlServer,
    logDir,

    async startInstance(i) {
      const inst = await startGatewayInstance(
        {
          name: "cmg1",
          index: i,
          serverCert: pki.server,
          client: { host: "127.0.0.1", port: h.ports[i]!.client },
          tunnel: { host: "127.0.0.1", port: h.ports[i]!.tunnel, siteCaPem: pki.siteCa.certPem, cert: tunnelServer },
          metrics: { host: "127.0.0.1", port: 0 },
          limits: { tunnelPingMs: 2000, ...o.limits },
        },
        { log: gatewayLogs(logSetFor(`gw${i}`)), ...(o.authenticators ? { authenticators: o.authenticators } : {}) },
      );
      h.ports[i] = { client: inst.clientPort, tunnel: inst.tunnelPort };
      h.instances[i] = inst;
      return inst;
    },

    async stopInstance(i, graceMs = 1000) {
      const inst = h.instances[i];
      h.instances[i] = null;
      await inst?.stop({ graceMs });
    },

    async startConnectionPoint(j, extra = {}) {
      tunnelCerts[j] ??= await issueCert({ issuer: pki.siteCa, commonName: `cp${j + 1}.opencmg.test`, usage: "client" });
      const cp = await startConnectionPoint({
        name: `cp${j + 1}.opencmg.test`,
        instances: h.ports.map((p) => ({ host: "127.0.0.1", port: p.tunnel })),
        dial: o.dial?.(j) ?? ((host, port) => network(j).dial(host, port)),
        tls: { certPem: tunnelCerts[j]!.certPem, keyPem: tunnelCerts[j]!.keyPem, siteCaPem: pki.siteCa.certPem },
        connectionsPerInstance: o.connectionsPerInstance ?? 2,
        settings: h.settings,
        backends,
        log: connectionPointLogs(logSetFor(`cp${j}`)),
        onHealth: (r) => void (h.health[j] ??= []).push(r),
        onTraffic: (r) => void (h.traffic[j] ??= []).push(r),
        reconnect: { minDelayMs: 50, maxDelayMs: 500 },
        dialTimeoutMs: 5000,
        pingMs: 2000,
        metrics: { host: "127.0.0.1", port: 0 },
        ...o.connector,
        ...extra,
      });
      h.connectionPoints[j] = cp;
      return cp;
    },

    async killConnectionPoint(j) {
      const cp = h.connectionPoints[j];
      h.connectionPoints[j] = null;
      // As a crash would: its TCP connections die first (no GOAWAY, no drain), then it stops.
      networks[j]?.cut();
      await cp?.stop({ drainMs: 0 });
    },

    async stopConnectionPoint(j) {
      const cp = h.connectionPoints[j];
      h.connectionPoints[j] = null;
      await cp?.stop({ drainMs: 2000 });
    },

    async waitReady(timeoutMs = 30_000) {
      const names = h.connectionPoints.map((cp, j) => (cp ? `cp${j + 1}.opencmg.test` : null)).filter((n): n is string => n !== null);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ok = h.instances.every((inst) => {
          if (!inst) return true;
          const s = inst.status();
          return names.every((n) => (s.connectionPoints[n] ?? 0) > 0);
        });
        if (ok) return;
        if (Date.now() > deadline) {
          throw new Error(`harness not ready: ${JSON.stringify(h.instances.map((i) => i?.status().connectionPoints))}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },

    request(i, path, ro = {}) {
      return (ro.h2 ? requestH2 : requestH1)(h.ports[i]!.client, path, pki.root.certPem, ro);
    },

    logLines(who, file) {
      const p = join(logDir, who, file);
      return existsSync(p) ? parseLines(readFileSync(p, "utf8")) : [];
    },

    issueClient(c) {
      return issueCert({ issuer: pki.intermediate, commonName: c.commonName, usage: "client", ...(c.crlUrl ? { crlUrl: c.crlUrl } : {}) });
    },

    async close() {
      await Promise.all(h.connectionPoints.map((_, j) => h.killConnectionPoint(j)));
      await Promise.all(h.instances.map((_, i) => h.stopInstance(i, 0)));
      for (const n of networks) await n?.close();
      await backend.close();
      await crlServer.close();
      for (const l of logSets) l.close();
      rmSync(logDir, { recursive: true, force: true });
    },
  };

  for (let i = 0; i < nInstances; i++) await h.startInstance(i);
  for (let j = 0; j < nCps; j++) await h.startConnectionPoint(j);
  return h;
}

/**
 * A TCP relay per target: `dial(host, port)` connects through a local relay to host:port, and
 * `cut()` destroys both sides of every relayed connection at once.
 */
class Network {
  private readonly relays = new Map<string, Promise<Server>>();
  private readonly pairs = new Set<[Socket, Socket]>();

  async dial(host: string, port: number): Promise<Socket> {
    const key = `${host}:${port}`;
    let relay = this.relays.get(key);
    if (!relay) {
      relay = this.startRelay(host, port);
      this.relays.set(key, relay);
    }
    const at = (await relay).address() as AddressInfo;
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: at.port });
      s.once("connect", () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    });
  }

  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    for (const r of this.relays.values()) {
      const server = await r;
      await new Promise<void>((done) => server.close(() => done()));
    }
  }

  private async startRelay(host: string, port: number): Promise<Server> {
    const server = createServer((down) => {
      const up = connect({ host, port });
      const pair: [Socket, Socket] = [down, up];
      this.pairs.add(pair);
      const end = (): void => {
        this.pairs.delete(pair);
        down.destroy();
        up.destroy();
      };
      down.on("error", end).on("close", end);
      up.on("error", end).on("close", end);
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return server;
  }
}

/** HTTP/1.1 request with an optional client certificate; a fresh connection each time. */
function requestH1(port: number, path: string, ca: string, o: RequestOptions): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port,
      path,
      method: o.method ?? "GET",
      headers: o.headers,
      ca,
      servername: "cmg.opencmg.test",
      agent: false,
      // Not in https.RequestOptions' type, but passed on to tls.connect: force HTTP/1.1.
      ...({ ALPNProtocols: ["http/1.1"] } as object),
      ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
    });
    req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), protocol: "http/1.1" }));
    });
    req.end(o.body);
  });
}

/** HTTP/2 request with an optional client certificate; a fresh session each time. */
function requestH2(port: number, path: string, ca: string, o: RequestOptions): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca,
      servername: "cmg.opencmg.test",
      ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error("client timeout"));
    }, o.timeoutMs ?? 30_000);
    session.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const stream = session.request({ ":method": o.method ?? "GET", ":path": path, ...o.headers }, { endStream: o.body === undefined });
    stream.on("error", (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
    stream.on("response", (headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        clearTimeout(timer);
        session.close();
        const { ":status": status, ...rest } = headers;
        resolve({ status: Number(status), headers: rest as HttpResult["headers"], body: Buffer.concat(chunks), protocol: "h2" });
      });
    });
    if (o.body !== undefined) stream.end(o.body);
  });
}

export async function startBackend(): Promise<TestBackend> {
  const requests: BackendRequest[] = [];
  const holds = new Map<string, ServerResponse[]>();
  const arrivals = new Map<string, () => void>();
  const arrived = new Set<string>();
  let closedEarly = 0;
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    const record: BackendRequest = { method: req.method ?? "", url, headers: req.headers, bodyBytes: 0 };
    requests.push(record);
    res.once("close", () => {
      if (!res.writableFinished) closedEarly++;
    });
    const bytes = /\/bytes\/(\d+)/.exec(url);
    const hold = /\/hold\/([\w-]+)/.exec(url);
    if (bytes) {
      req.resume();
      streamBytes(res, Number(bytes[1]));
    } else if (hold) {
      req.resume();
      const key = hold[1]!;
      holds.set(key, [...(holds.get(key) ?? []), res]);
      arrived.add(key);
      arrivals.get(key)?.();
    } else {
      req.on("data", (c: Buffer) => (record.bodyBytes += c.length));
      req.on("end", () => {
        const body = JSON.stringify({ method: record.method, url, headers: req.headers, bodyBytes: record.bodyBytes });
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "keep-alive", "keep-alive": "timeout=5" });
        res.end(body);
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get closedEarly() {
      return closedEarly;
    },
    release(key) {
      for (const res of holds.get(key) ?? []) if (!res.destroyed) res.end("released");
      holds.delete(key);
    },
    held(key) {
      if (arrived.has(key)) return Promise.resolve();
      return new Promise((r) => arrivals.set(key, r));
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Writes `n` bytes in 64 KiB chunks, waiting for drain: the backend never holds the body either. */
function streamBytes(res: ServerResponse, n: number): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!res.write(part)) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  res.on("close", () => {
    left = 0;
  });
  pump();
}

export interface CrlServer {
  base: string;
  available: boolean;
  hits: number;
  files: Record<string, string>;
  close(): Promise<void>;
}

export async function startCrlServer(): Promise<CrlServer> {
  const state: CrlServer = {
    base: "",
    available: true,
    hits: 0,
    files: {},
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const server = http.createServer((req, res) => {
    state.hits++;
    const file = state.files[req.url ?? ""];
    if (!state.available || !file) {
      res.writeHead(state.available ? 404 : 503);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pkix-crl" });
    res.end(file);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
