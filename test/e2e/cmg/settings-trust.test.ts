/**
 * Only the site decides what a gateway instance trusts, played as an attacker would with real
 * processes: `opencmg cmg start` runs the instance, `opencmg connection-point serve` two
 * connection points (cp01 stays, cp02 is removed while its tunnels are up). Then a hand-written
 * connection point dials the instance's tunnel port:
 *
 * - with cp02's certificate and key, as a stolen copy of its files after the role and the server
 *   were removed: refused, and the settings it brings (revision 2^53-1, the attacker's root, no
 *   token keys) are not applied;
 * - with an admitted certificate (a connection point that "got in"): its forged settings (signed
 *   with its own key, with the site key's kid, or unsigned in the old format) are refused;
 *
 * and throughout, a legitimate client keeps getting 200, the attacker's client certificate 403,
 * and the site's own later change reaches the instance.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import http2 from "node:http2";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { createCa, issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const FQDN = "cmg.contoso.test";
const CMG = "trust";
const CP1 = "cp01.contoso.test";
const CP2 = "cp02.contoso.test";
let pki: TestPki;
let dataDir: string;
let backend: Server;
let clientPort: number;
let tunnelPort: number;
let metricsPort: number;
let mpRoleId: string;
let attackerRoot: IssuedCert;
let attackerClient: IssuedCert;
const children: ChildProcess[] = [];
let cp2: ChildProcess;
let reader: OpenedSite;

function opencmg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [OPENCMG_BIN, "--data", dataDir, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function startProcess(args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", dataDir, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-8000)));
  await until(`${args.join(" ")} to start`, () => (ready.test(err) ? true : child.exitCode !== null ? assert.fail(`${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined), 120_000);
  return child;
}

/** The instance's own view: settings revision and ready tunnels per connection point. */
async function health(): Promise<{ settingsRevision: number | null; connectionPoints: Record<string, number> }> {
  const r = await request(`http://127.0.0.1:${metricsPort}/healthz`);
  return (await r.body.json()) as { settingsRevision: number | null; connectionPoints: Record<string, number> };
}

const clients = new Map<IssuedCert, Agent>();
/** Status of a device request through the instance, with client certificate `cert`, on a new connection. */
async function device(cert: IssuedCert): Promise<number> {
  let agent = clients.get(cert);
  if (!agent) clients.set(cert, (agent = new Agent({ connect: { ca: [pki.root.certPem], cert: cert.certPem, key: cert.keyPem, servername: FQDN }, pipelining: 0 })));
  const r = await request(`https://127.0.0.1:${clientPort}/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request`, { dispatcher: agent, reset: true });
  await r.body.text();
  return r.statusCode;
}

function cmgServiceLog(): string {
  const f = join(dataDir, "logs", "CMGService.log");
  return existsSync(f) ? readFileSync(f, "utf8") : "";
}

/** A connection point written by hand: the tunnel TLS with `cert`, reverse HTTP/2, the control stream answered with `lines`. */
interface Rogue {
  closed: boolean;
  /** Device requests the instance sent it. */
  requests: number;
  /** What the instance said on the control stream. */
  fromGateway: { type: string; revision?: number; error?: string }[];
  whenClosed: Promise<void>;
  destroy(): void;
}

async function rogueConnectionPoint(cert: { certPem: string; keyPem: string }, lines: string[]): Promise<Rogue> {
  const socket = tls.connect({
    host: "127.0.0.1",
    port: tunnelPort,
    cert: cert.certPem,
    key: cert.keyPem,
    ca: [readFileSync(join(dataDir, "pki", "site-ca.pem"), "utf8")],
    checkServerIdentity: () => undefined,
    ALPNProtocols: ["opencmg/1"],
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  socket.on("error", () => undefined);
  const r: Rogue = { closed: false, requests: 0, fromGateway: [], whenClosed: new Promise((done) => socket.once("close", () => done())), destroy: () => socket.destroy() };
  void r.whenClosed.then(() => (r.closed = true));
  const session = http2.performServerHandshake(socket);
  session.on("error", () => undefined);
  session.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    if (headers[":path"] !== "/.opencmg/v1/control") {
      // It would answer the device itself.
      r.requests++;
      stream.respond({ ":status": 200 });
      stream.end("answered by the attacker");
      return;
    }
    stream.respond({ ":status": 200, "opencmg-protocol": "1", "content-type": "application/x-ndjson" });
    for (const l of lines) stream.write(l + "\n");
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => {
      buf += d;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        r.fromGateway.push(JSON.parse(buf.slice(0, nl)) as Rogue["fromGateway"][number]);
        buf = buf.slice(nl + 1);
      }
    });
  });
  return r;
}

/** What the attacker wants the instance to enforce: the highest safe revision, its own root, no token keys. */
function attackerSettings(jwk: Record<string, unknown>): Record<string, unknown> {
  return {
    revision: Number.MAX_SAFE_INTEGER,
    cmg: CMG,
    settingsKeys: [jwk],
    connectionPoints: [],
    trustedRoots: [attackerRoot.certPem],
    intermediates: [],
    crlCheck: false,
    urlMap: { [mpRoleId]: { kind: "mp", allowCmgTraffic: true } },
  };
}

/** A settings document signed with a key the attacker made, under `kid`. */
function forgedDocument(kid?: string): string {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const k = kid ?? randomUUID();
  const jwk = { ...(publicKey.export({ format: "jwk" }) as Record<string, unknown>), kid: k, alg: "EdDSA", use: "sig" };
  const payload = Buffer.from(JSON.stringify(attackerSettings(jwk))).toString("base64url");
  const protectedHeader = Buffer.from(JSON.stringify({ alg: "EdDSA", kid: k, typ: "opencmg-settings+jws" })).toString("base64url");
  const signature = sign(null, Buffer.from(`${protectedHeader}.${payload}`), privateKey).toString("base64url");
  return JSON.stringify({ type: "settings", document: { payload, signatures: [{ protected: protectedHeader, signature }] } });
}

/** The settings message as a connection point sent it before the site signed settings. */
function legacySettings(): string {
  const { revision, trustedRoots, intermediates, crlCheck, urlMap } = attackerSettings({});
  return JSON.stringify({ type: "settings", settings: { revision, trustedRoots, intermediates, crlCheck, urlMap } });
}

const hello = JSON.stringify({ type: "hello", protocol: 1, connectionPoint: CP2 });

before(async () => {
  pki = await makeTestPki({ serverName: FQDN });
  attackerRoot = await createCa({ commonName: "Attacker Root" });
  attackerClient = await issueCert({ issuer: attackerRoot, commonName: "attacker-device", usage: "client" });
  dataDir = tempDir();
  backend = createServer((_req, res) => res.end("ok from the management point"));
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  clientPort = await freePortRange(1);
  tunnelPort = await freePortRange(1);
  metricsPort = await freePortRange(1);
  const site = await openSite({ dataDir });
  try {
    await initSite(site, { code: "P01", name: "E2E" });
    const { servers, roles, cmgs } = site.services;
    await cmgs.create({
      name: CMG,
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      instances: 1,
      trustedRoots: [pki.root.certPem],
      intermediates: [pki.intermediate.certPem],
      crlCheck: false,
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientPort, tunnelPortBase: tunnelPort, metricsPortBase: metricsPort },
    });
    await servers.add({ fqdn: "mp01.contoso.test" });
    mpRoleId = String((await roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: `http://127.0.0.1:${(backend.address() as { port: number }).port}` })).id);
    for (const cp of [CP1, CP2]) {
      await servers.add({ fqdn: cp });
      await roles.add(cp, "cmg-connection-point", { cmgName: CMG });
    }
  } finally {
    await site.close();
  }
  reader = await openSite({ dataDir });
  await startProcess(["cmg", "start", CMG, "--poll-interval", "0.3"], /Ctrl-C stops them/);
  await startProcess(["connection-point", "serve", "--server", CP1, "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
  cp2 = await startProcess(["connection-point", "serve", "--server", CP2, "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
});

after(async () => {
  for (const a of clients.values()) await a.close();
  await reader?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await new Promise((r) => backend.close(r));
  rmSync(dataDir, { recursive: true, force: true });
});

it("closes a removed connection point's tunnels on the next push, refuses its stolen certificate and every settings document not the site's, and keeps serving", async () => {
  await until("tunnels from both connection points", async () => {
    const h = await health().catch(() => null);
    return h && (h.connectionPoints[CP1] ?? 0) > 0 && (h.connectionPoints[CP2] ?? 0) > 0;
  }, 120_000);
  assert.equal(await device(pki.client), 200);

  // The role goes while cp02's tunnels are up: cp01 carries the site's next settings, which no longer admit cp02.
  const removed = await opencmg(["role", "remove", CP2, "cmg-connection-point"]);
  assert.equal(removed.code, 0, removed.stderr);
  await until("cp02's tunnels closed by the instance", async () => ((await health()).connectionPoints[CP2] ?? 0) === 0);
  assert.match(cmgServiceLog(), /no longer admits connection point cp02\.contoso\.test/);
  cp2.kill("SIGTERM");
  await until("cp02's process to stop", () => cp2.exitCode !== null || cp2.signalCode !== null);
  const gone = await opencmg(["server", "remove", CP2]);
  assert.equal(gone.code, 0, gone.stderr);
  const revision = (await health()).settingsRevision;
  assert.ok(revision !== null && Number.isSafeInteger(revision));

  // A stolen copy of cp02's certificate and key, after the role and the server were removed.
  const stolen = { certPem: readFileSync(join(dataDir, "pki", `cp-${CP2}.pem`), "utf8"), keyPem: readFileSync(join(dataDir, "pki", `cp-${CP2}.key`), "utf8") };
  const siteKid = (JSON.parse(readFileSync(join(dataDir, "cmg", CMG, "instance-0.json"), "utf8")) as { trust?: { settingsKeys: { kid: string }[] } }).trust?.settingsKeys[0]?.kid;
  for (const lines of [[hello, forgedDocument()], [hello, legacySettings()], [hello]]) {
    const rogue = await rogueConnectionPoint(stolen, lines);
    await until("the instance to close the stolen certificate's tunnel", () => rogue.closed, 30_000);
    assert.equal(rogue.requests, 0, "no device request reached the attacker");
    assert.ok(!rogue.fromGateway.some((m) => m.type === "settings-applied"), JSON.stringify(rogue.fromGateway));
  }
  assert.match(cmgServiceLog(), /refused: connection point cp02\.contoso\.test \(certificate serial [0-9A-F]+\) is not admitted to this CMG/);
  assert.equal((await health()).settingsRevision, revision);
  assert.equal(await device(pki.client), 200, "a legitimate client still gets through");
  assert.equal(await device(attackerClient), 403, "the attacker's client certificate does not");

  // Even a connection point that got in (an admitted certificate) cannot write settings.
  const cp1 = { certPem: readFileSync(join(dataDir, "pki", `cp-${CP1}.pem`), "utf8"), keyPem: readFileSync(join(dataDir, "pki", `cp-${CP1}.key`), "utf8") };
  const inside = await rogueConnectionPoint(cp1, [forgedDocument(), forgedDocument(siteKid), legacySettings()]);
  await until("three settings refused", () => inside.fromGateway.filter((m) => m.type === "settings-rejected").length >= 3 || inside.closed);
  const rejected = inside.fromGateway.filter((m) => m.type === "settings-rejected");
  assert.ok(!inside.fromGateway.some((m) => m.type === "settings-applied"), JSON.stringify(inside.fromGateway));
  assert.equal(rejected.length, 3, JSON.stringify(inside.fromGateway));
  assert.match(rejected[0]!.error!, /^unknown_key/);
  assert.match(rejected[1]!.error!, /^bad_signature/);
  inside.destroy();
  const h = await health();
  assert.equal(h.settingsRevision, revision);
  assert.ok((h.connectionPoints[CP1] ?? 0) > 0, "cp01's tunnels stay");
  assert.match(cmgServiceLog(), /settings refused \(unknown_key\)/);
  assert.match(cmgServiceLog(), /settings refused \(bad_signature\)/);
  assert.equal(await device(pki.client), 200);
  assert.equal(await device(attackerClient), 403);

  // The site's own next change still applies: a new revision, higher than before.
  await reader.services.servers.add({ fqdn: "mp02.contoso.test" });
  await reader.services.roles.add("mp02.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: "http://127.0.0.1:9" });
  await until("the site's next settings in force", async () => ((await health()).settingsRevision ?? 0) > revision!);
  assert.equal(await device(pki.client), 200);
});
