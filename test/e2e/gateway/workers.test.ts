/**
 * `gateway serve --workers 2`: two worker processes share the client port (reusePort on Node
 * 22.12+, the cluster primary on Node 20), each with a tunnel port of its own that the connection
 * point learns from the `workers` message and dials. Real processes and TLS: the instance is a
 * real `gateway serve` from a start-up file; the connection point is the real one, in this process,
 * relaying to the test backend; the settings are signed as the site signs them.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import http2 from "node:http2";
import https from "node:https";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { loadOrCreateTokenKey, makeProof, type TokenKey } from "../../../src/client/token-key.ts";
import type { PublicJwk } from "../../../src/wire/tunnel/protocol.ts";
import { connectionPointLogs, startConnectionPoint, type ConnectionPoint } from "../../../src/connection-point/connection-point.ts";
import { LogSet } from "../../../src/logs/cmtrace.ts";
import { issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import type { CmgSettings } from "../../../src/wire/tunnel/protocol.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { startBackend, type TestBackend } from "../../helpers/cmg-backend.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePort } from "../../helpers/ports.ts";
import { admitted, makeSettingsSigner, startupTrust, type SettingsSigner } from "../../helpers/settings-signer.ts";
import { until } from "../../helpers/until.ts";

const MP = "72057594037927941";
const SERVER_NAME = "cmg.contoso.test";

let dir: string;
let pki: TestPki;
let backend: TestBackend;
let signer: SettingsSigner;
let tunnelClient: IssuedCert;
let settings: CmgSettings;
let gw: { child: ChildProcess; out: () => string; exit: Promise<number | null> };
let clientPort: number;
let tunnelPort: number;
let metricsPort: number;
const cps: ConnectionPoint[] = [];
/** The site's token signing key (the test plays the site) and a device's proof key. */
let tokenKey: { kid: string; privateKey: CryptoKey; jwk: PublicJwk };
let device: TokenKey;
const logSets: LogSet[] = [];

before(async () => {
  dir = tempDir("opencmg-workers-");
  pki = await makeTestPki({ serverName: SERVER_NAME });
  backend = await startBackend();
  signer = makeSettingsSigner();
  const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: "cmg.opencmg.test", dnsNames: ["cmg.opencmg.test"], ipAddresses: ["127.0.0.1"], usage: "server" });
  tunnelClient = await issueCert({ issuer: pki.siteCa, commonName: "opencmg-cp:cp1.opencmg.test", usage: "client" });
  settings = {
    revision: 1,
    cmg: "cmg1",
    settingsKeys: signer.keys,
    connectionPoints: [admitted(tunnelClient)],
    trustedRoots: pki.trust.roots,
    intermediates: pki.trust.intermediates,
    crlCheck: false,
    urlMap: { [MP]: { kind: "mp", allowCmgTraffic: true } },
  };
  const f = (name: string, text: string): string => (writeFileSync(join(dir, name), text, { mode: 0o600 }), name);
  metricsPort = await freePort();
  const startup = {
    version: 1,
    name: "cmg1",
    index: 0,
    serverCertFile: f("server.pem", pki.server.certPem),
    serverKeyFile: f("server.key", pki.server.keyPem),
    tunnelCertFile: f("tunnel.pem", tunnelServer.certPem),
    tunnelKeyFile: f("tunnel.key", tunnelServer.keyPem),
    siteCaFile: f("site-ca.pem", pki.siteCa.certPem),
    client: { host: "127.0.0.1", port: 0 },
    tunnel: { host: "127.0.0.1", port: 0 },
    metrics: { host: "127.0.0.1", port: metricsPort },
    trust: startupTrust(signer.keys, [tunnelClient]),
  };
  writeFileSync(join(dir, "instance-0.json"), JSON.stringify(startup));

  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", join(dir, "gw"), "gateway", "serve", "--config", join(dir, "instance-0.json"), "--workers", "2"], { stdio: ["ignore", "ignore", "pipe"] });
  let out = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  gw = { child, out: () => out, exit: new Promise((r) => child.once("exit", (c) => r(c))) };
  await until("gateway serve --workers 2 to listen", () => /gateway cmg1-0 listening/.test(out) || child.exitCode !== null);
  assert.equal(child.exitCode, null, out);
  const m = /listening: clients on 127\.0\.0\.1:(\d+), tunnels on 127\.0\.0\.1:(\d+),(\d+)/.exec(out);
  assert.ok(m, out);
  clientPort = Number(m[1]);
  tunnelPort = Number(m[2]);
  assert.notEqual(Number(m[3]), tunnelPort, "each worker has a tunnel port of its own");

  // Site-issued client tokens with proofs of possession (RFC 9449), for this CMG as reached here.
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = randomUUID();
  tokenKey = { kid, privateKey, jwk: { ...((await exportJWK(publicKey)) as PublicJwk), kid, alg: "ES256" } };
  device = await loadOrCreateTokenKey(join(dir, "device.pem"));
  settings.tokens = { issuer: "opencmg-site:P01", audience: "opencmg-cmg:cmg1", keys: [tokenKey.jwk], blocked: [], origins: { cmg: [`https://${SERVER_NAME}:${clientPort}`], instances: [] } };
});

after(async () => {
  for (const cp of cps) await cp.stop({ drainMs: 100 });
  if (gw && gw.child.exitCode === null) {
    gw.child.kill("SIGTERM");
    assert.equal(await gw.exit, 0, gw.out());
  }
  for (const l of logSets) l.close();
  await backend?.close();
});

async function startCp(followWorkers: boolean): Promise<ConnectionPoint> {
  const logs = new LogSet({ dir: join(dir, `cp${cps.length}`) });
  logSets.push(logs);
  const cp = await startConnectionPoint({
    name: "cp1.opencmg.test",
    instances: [{ host: "127.0.0.1", port: tunnelPort }],
    tls: { certPem: tunnelClient.certPem, keyPem: tunnelClient.keyPem, siteCaPem: pki.siteCa.certPem },
    connectionsPerInstance: 2,
    settings: signer.sign(settings),
    backends: { [MP]: backend.url },
    log: connectionPointLogs(logs),
    reconnect: { minDelayMs: 50, maxDelayMs: 500 },
    dialTimeoutMs: 5000,
    followWorkers,
  });
  cps.push(cp);
  return cp;
}

const clientTls = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.root.certPem, servername: SERVER_NAME });
const PATH = `/CCM_Proxy_MutualAuth/${MP}/SMS_MP/v1/ping`;

/** One request on a new connection (HTTP/1.1): status, the worker that answered, the refusal reason. */
function requestOnce(): Promise<{ status: number; worker: string; reason: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: clientPort, path: PATH, agent: false, ...clientTls() }, (res) => {
      res.resume();
      res.once("end", () => resolve({ status: res.statusCode!, worker: String(res.headers["opencmg-worker"]), reason: res.headers["x-opencmg-reason"] as string | undefined }));
    });
    req.once("error", reject);
    req.end();
  });
}

/** New connections until one is answered by `worker` (the kernel or the primary spreads them): bounded. */
async function requestAt(worker: string): Promise<{ status: number; worker: string; reason: string | undefined }> {
  for (let i = 0; i < 60; i++) {
    const r = await requestOnce();
    if (r.worker === worker) return r;
  }
  throw new Error(`no connection of 60 reached worker ${worker}`);
}

/** A request with a client token and a proof (the DPoP header as given). */
function tokenRequest(token: string, proof: string): Promise<{ status: number; worker: string; reason: string | undefined; nonce: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: clientPort, path: TOKEN_PATH, agent: false, ca: pki.root.certPem, servername: SERVER_NAME, headers: { authorization: `DPoP ${token}`, dpop: proof } }, (res) => {
      res.resume();
      res.once("end", () =>
        resolve({ status: res.statusCode!, worker: String(res.headers["opencmg-worker"]), reason: res.headers["x-opencmg-reason"] as string | undefined, nonce: res.headers["dpop-nonce"] as string | undefined }),
      );
    });
    req.once("error", reject);
    req.end();
  });
}
const TOKEN_PATH = `/CCM_Proxy_ServerAuth/${MP}/SMS_MP/v1/ping`;

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
}

/** A series' value for one worker, or null when absent. */
function value(text: string, name: string, worker: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`worker="${worker}"`));
  return line ? Number(line.split(" ").at(-1)) : null;
}

function workerPid(worker: number): number[] {
  return [...gw.out().matchAll(new RegExp(`worker ${worker} \\(pid (\\d+)\\) up`, "g"))].map((m) => Number(m[1]));
}

describe("gateway serve --workers 2", () => {
  it("the connection point dials both workers, and requests are relayed by each", async () => {
    const cp = await startCp(true);
    await until("tunnels to both workers", () => cp.health().instances.length === 2 && cp.health().instances.every((i) => i.connected === 2));
    const at0 = await requestAt("0");
    const at1 = await requestAt("1");
    assert.deepEqual([at0.status, at0.reason, at1.status, at1.reason], [200, undefined, 200, undefined]);
    const text = await metrics();
    assert.ok((value(text, "opencmg_gateway_tunnel_sessions", "0") ?? 0) >= 1, text);
    assert.ok((value(text, "opencmg_gateway_tunnel_sessions", "1") ?? 0) >= 1, text);
    assert.ok((value(text, "process_cpu_user_seconds_total", "1") ?? -1) >= 0, "each worker's CPU is on the metrics port");
  });

  it("a TLS session from one worker resumes at the other (shared ticket keys)", async () => {
    const connect = (session?: Buffer): Promise<{ reused: boolean; worker: string; ticket: Buffer | undefined }> =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: "127.0.0.1", port: clientPort, ALPNProtocols: ["http/1.1"], ...clientTls(), ...(session ? { session } : {}) });
        let reused = false;
        let ticket: Buffer | undefined;
        let text = "";
        s.on("session", (t: Buffer) => (ticket = t));
        s.once("secureConnect", () => {
          reused = s.isSessionReused();
          s.write(`GET ${PATH} HTTP/1.1\r\nHost: ${SERVER_NAME}\r\nConnection: close\r\n\r\n`);
        });
        s.setEncoding("utf8").on("data", (d: string) => (text += d));
        s.once("error", reject);
        s.once("close", () => resolve({ reused, worker: /opencmg-worker: (\d+)/i.exec(text)?.[1] ?? "?", ticket: ticket ?? session }));
      });
    const first = await connect();
    assert.equal(first.reused, false);
    assert.ok(first.ticket, "a session ticket");
    const other = first.worker === "0" ? "1" : "0";
    let resumed: { reused: boolean; worker: string } | undefined;
    for (let i = 0; i < 60 && resumed?.worker !== other; i++) resumed = await connect(first.ticket);
    assert.equal(resumed?.worker, other, "a connection reached the other worker");
    assert.equal(resumed?.reused, true, `the session of worker ${first.worker} resumed at worker ${other}`);
  });

  it("a proof of possession is good once per instance, whichever worker takes it; a nonce of one worker is good at the other", async () => {
    const iat = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ cnf: { jkt: device.jkt } })
      .setProtectedHeader({ alg: "ES256", kid: tokenKey.kid, typ: "opencmg-client+jwt" })
      .setIssuer("opencmg-site:P01")
      .setAudience("opencmg-cmg:cmg1")
      .setSubject("GUID:6F9619FF-8B86-D011-B42D-00CF4FC964FF")
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + 3600)
      .setJti(randomUUID())
      .sign(tokenKey.privateKey);
    const htu = `https://${SERVER_NAME}:${clientPort}${TOKEN_PATH}`;
    /** New connections with `proof` until one reaches `worker`. */
    const at = async (worker: string, proof: () => Promise<string>) => {
      for (let i = 0; i < 60; i++) {
        const r = await tokenRequest(token, await proof());
        if (r.worker === worker) return r;
      }
      throw new Error(`no connection of 60 reached worker ${worker}`);
    };
    // A nonce from one worker; proofs made with it are accepted at the other.
    const asked = await tokenRequest(token, await makeProof(device, "GET", htu, token));
    assert.deepEqual([asked.status, asked.reason], [401, "use_dpop_nonce"]);
    assert.ok(asked.nonce);
    const otherThan = (w: string): string => (w === "0" ? "1" : "0");
    const elsewhere = await at(otherThan(asked.worker), () => makeProof(device, "GET", htu, token, asked.nonce));
    assert.deepEqual([elsewhere.status, elsewhere.reason], [200, undefined], `worker ${asked.worker}'s nonce is good at worker ${otherThan(asked.worker)}`);
    // One proof: accepted where it is first used, refused as a replay at the other worker.
    const proof = await makeProof(device, "GET", htu, token, asked.nonce);
    const used = await tokenRequest(token, proof);
    assert.deepEqual([used.status, used.reason], [200, undefined]);
    const replayed = await at(otherThan(used.worker), async () => proof);
    assert.deepEqual([replayed.status, replayed.reason], [401, "proof_replayed"], `a proof used at worker ${used.worker} is refused at worker ${otherThan(used.worker)}`);
  });

  it("a worker killed with SIGKILL is restarted; the other worker's tunnels and clients are not disturbed", async () => {
    // A client connection held at worker 0.
    let session: http2.ClientHttp2Session | undefined;
    for (let i = 0; i < 60 && !session; i++) {
      const s = http2.connect(`https://127.0.0.1:${clientPort}`, clientTls());
      const worker = await new Promise<string>((resolve, reject) => {
        const r = s.request({ ":path": PATH });
        r.once("response", (h) => resolve(String(h["opencmg-worker"])));
        r.once("error", reject);
        r.resume();
      });
      if (worker === "0") session = s;
      else s.close();
    }
    assert.ok(session, "an HTTP/2 connection at worker 0");
    const tunnelsOf0 = value(await metrics(), "opencmg_gateway_tunnel_sessions_total", "0");
    const [pid1] = workerPid(1).slice(-1);
    assert.ok(pid1);
    process.kill(pid1, "SIGKILL");
    await until("worker 1 to be restarted", () => workerPid(1).length === 2);
    const cp = cps[0]!;
    await until("the connection point's tunnels to worker 1 to be back", () => cp.health().instances.every((i) => i.connected === 2));
    const again = await requestAt("1");
    assert.equal(again.status, 200);
    // Worker 0: the same client connection still answers, and it opened no new tunnel.
    const status = await new Promise<number>((resolve, reject) => {
      const r = session!.request({ ":path": PATH });
      r.once("response", (h) => resolve(Number(h[":status"])));
      r.once("error", reject);
      r.resume();
    });
    session.close();
    assert.equal(status, 200);
    assert.equal(value(await metrics(), "opencmg_gateway_tunnel_sessions_total", "0"), tunnelsOf0);
  });

  it("a worker without a tunnel answers 503 worker_without_tunnel, logged; the other relays", async () => {
    // A connection point that dials only the instance's own endpoint (worker 0), as earlier versions do.
    await cps.shift()!.stop({ drainMs: 100 });
    const cp = await startCp(false);
    await until("the old-style connection point's tunnels", () => cp.health().instances.length === 1 && cp.health().instances[0]!.connected === 2);
    const at1 = await requestAt("1");
    assert.deepEqual([at1.status, at1.reason], [503, "worker_without_tunnel"]);
    assert.equal((await requestAt("0")).status, 200);
    await until("the refusal's log line", () => readFileSync(join(dir, "gw", "logs", "CMGHttpHandler.log"), "utf8").includes("Worker 1 has no tunnel: 503 worker_without_tunnel"));
  });

  it("settings one worker applies reach the other, and a restarted worker starts with them, tunnel or not", async () => {
    // Only worker 0 has tunnels (the previous test's connection point): the site's next document reaches it alone.
    const cp = cps[0]!;
    settings = { ...settings, revision: 2, crlCheck: true };
    cp.update({ settings: signer.sign(settings) });
    await until("worker 1 to enforce revision 2", async () => value(await metrics(), "opencmg_gateway_settings_revision", "1") === 2);
    assert.equal(cp.health().instances.length, 1, "worker 1 got it through the primary, not over a tunnel");
    const [pid1] = workerPid(1).slice(-1);
    process.kill(pid1!, "SIGKILL");
    const restarts = workerPid(1).length;
    await until("worker 1 to be restarted", () => workerPid(1).length === restarts + 1);
    await until("the restarted worker's metrics", async () => value(await metrics(), "opencmg_gateway_settings_revision", "1") !== null);
    assert.equal(value(await metrics(), "opencmg_gateway_settings_revision", "1"), 2);
  });

  it("connections no worker has taken yet wait in the kernel's backlog, not in the primary (Node 20 included)", async () => {
    // On Node 20 the workers share the port through the cluster module. With its default (round
    // robin) the primary accepted every connection and held it until a worker took it: a queue
    // bounded only by the primary's open files, which a stranger could fill while the workers were busy.
    const primary = gw.child.pid!;
    const pids = [workerPid(0).at(-1)!, workerPid(1).at(-1)!];
    const openFiles = (): number => readdirSync(`/proc/${primary}/fd`).length;
    const health = async (): Promise<number> => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status;
    await health();
    const before = openFiles();
    const sockets: net.Socket[] = [];
    for (const p of pids) process.kill(p, "SIGSTOP");
    try {
      await Promise.all(
        Array.from(
          { length: 200 },
          () =>
            new Promise<void>((resolve, reject) => {
              const s = net.connect(clientPort, "127.0.0.1", () => resolve());
              s.once("error", reject);
              sockets.push(s);
            }),
        ),
      );
      // The primary answers on its event loop, after it has seen the connections (accepted or not).
      await health();
      const held = openFiles() - before;
      assert.ok(held < 20, `with both workers stopped, 200 waiting connections made the primary hold ${held} more open files`);
    } finally {
      for (const p of pids) process.kill(p, "SIGCONT");
      for (const s of sockets) s.destroy();
    }
    // Answered by a worker (with the previous test's settings, which check CRLs, a refusal).
    assert.match((await requestOnce()).worker, /^[01]$/, "the workers answer once they run again");
  });
});
