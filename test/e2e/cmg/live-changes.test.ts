/**
 * A CMG changed while a client uses it, as an administrator would do it: `opencmg cmg start` runs
 * the instances (local provider, real processes), `opencmg connection-point serve` the connection
 * point, and `opencmg cmg update` renews the server certificate, scales 2 -> 3 -> 2 and adds and
 * removes a trusted root. A client keeps sending requests through both instances meanwhile, on
 * kept-alive connections, on new connections, and on one HTTP/2 session opened before the first
 * change: not one request may fail, and that session is never closed. Then `cmg stop`/`start`,
 * and `cmg delete` leaves no process, port or key behind.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import http2 from "node:http2";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { issueCert } from "../../../src/pki/issue.ts";
import type { CmgView } from "../../../src/site/services/cmgs.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { childrenOf } from "../../helpers/proc.ts";
import { until } from "../../helpers/until.ts";

const FQDN = "cmg.contoso.test";
let pki: TestPki;
let dataDir: string;
let backend: Server;
let clientBase: number;
let tunnelBase: number;
let mpRoleId: string;
const children: ChildProcess[] = [];
let supervisor: ChildProcess;
let connectionPoint: ChildProcess;

/** Runs `opencmg --data DIR ARGS` as a process, without blocking this one (the client keeps going). */
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

/** The CMG as the site shows it (read here: a process per look would slow every wait down). */
let reader: OpenedSite;
function show(): Promise<CmgView> {
  return reader.services.cmgs.show("live");
}

/** Starts a long-running `opencmg` process and resolves once its standard error matches `ready`. */
async function startProcess(args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", dataDir, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-8000)));
  await until(`${args.join(" ")} to start`, () => (ready.test(err) ? true : child.exitCode !== null ? assert.fail(`${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined), 120_000);
  return child;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Thumbprint of the server certificate a new TLS connection to instance port `port` gets. */
function servedThumbprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: FQDN, ca: [pki.root.certPem] }, () => {
      const fp = s.getPeerX509Certificate()!.fingerprint.replace(/:/g, "");
      s.destroy();
      resolve(fp);
    });
    s.once("error", reject);
  });
}

const t0 = Date.now();
const mark = (what: string): void => void process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}\n`);
const thumbprintOf = (pem: string): string => new X509Certificate(pem).fingerprint.replace(/:/g, "");

before(async () => {
  pki = await makeTestPki({ serverName: FQDN });
  dataDir = tempDir();
  backend = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const backendPort = (backend.address() as { port: number }).port;
  clientBase = await freePortRange(3);
  tunnelBase = await freePortRange(3);
  const site = await openSite({ dataDir });
  try {
    await initSite(site, { code: "P01", name: "E2E" });
    const { servers, roles, cmgs } = site.services;
    await cmgs.create({
      name: "live",
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      instances: 2,
      trustedRoots: [pki.root.certPem],
      intermediates: [pki.intermediate.certPem],
      crlCheck: false,
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: tunnelBase, metricsPortBase: 0 },
    });
    await servers.add({ fqdn: "mp01.contoso.test" });
    mpRoleId = String((await roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: `http://127.0.0.1:${backendPort}` })).id);
    await servers.add({ fqdn: "cp01.contoso.test" });
    await roles.add("cp01.contoso.test", "cmg-connection-point", { cmgName: "live" });
  } finally {
    await site.close();
  }
  reader = await openSite({ dataDir });
  supervisor = await startProcess(["cmg", "start", "live", "--poll-interval", "0.3"], /Ctrl-C stops them/);
  connectionPoint = await startProcess(["connection-point", "serve", "--server", "cp01.contoso.test", "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
});

after(async () => {
  await reader?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await new Promise((r) => backend.close(r));
});

/** The client: requests through instances 0 and 1, kept-alive and on new connections, counted. */
class Client {
  ok = 0;
  readonly failures: string[] = [];
  private stopped = false;
  private readonly kept = new Agent({ connect: this.tls() });
  private readonly fresh = new Agent({ connect: this.tls(), pipelining: 0 });
  private loop: Promise<void> | undefined;

  private tls() {
    return { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN };
  }

  start(): void {
    this.loop = (async () => {
      for (let n = 0; !this.stopped; n++) {
        const port = clientBase + (n % 2);
        const fresh = n % 4 >= 2;
        try {
          const res = await request(`https://127.0.0.1:${port}/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request?n=${n}`, { dispatcher: fresh ? this.fresh : this.kept, reset: fresh });
          const body = await res.body.text();
          if (res.statusCode === 200) this.ok++;
          else this.failures.push(`request ${n} to instance ${n % 2}: ${res.statusCode} ${body.slice(0, 200)}`);
        } catch (e) {
          this.failures.push(`request ${n} to instance ${n % 2}: ${(e as Error).message}`);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.kept.close();
    await this.fresh.close();
  }
}

it("renews the certificate, scales 2 -> 3 -> 2, adds and removes a trusted root: the client's requests keep succeeding", async () => {
  await until("the CMG to be Ready with 2 instances", async () => {
    const v = await show();
    return v.status === "Ready" ? v : undefined;
  }, 120_000);
  mark("Ready");
  const client = new Client();
  client.start();
  // One HTTP/2 session opened before any change, used throughout: it must never be closed.
  const session = http2.connect(`https://127.0.0.1:${clientBase}`, { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN });
  let sessionClosed = false;
  session.on("close", () => (sessionClosed = true));
  session.on("error", () => undefined);
  const viaSession = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = session.request({ ":path": `/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request?session=1` });
      req.on("response", (h) => {
        req.resume();
        req.on("end", () => resolve(Number(h[":status"])));
      });
      req.on("error", reject);
      req.end();
    });
  assert.equal(await viaSession(), 200);
  const sessionCert = thumbprintOf((session.socket as unknown as { getPeerX509Certificate(): X509Certificate }).getPeerX509Certificate().toString());
  assert.equal(sessionCert, pki.server.thumbprint);
  await until("the client's first requests", () => client.ok >= 10 || undefined, 120_000);

  // 1. Renewal: same service name, new key. New connections get it; established ones keep theirs.
  const renewed = await issueCert({ issuer: pki.root, commonName: FQDN, dnsNames: [FQDN], ipAddresses: ["127.0.0.1"], usage: "server" });
  writeFileSync(join(dataDir, "renewed.pem"), renewed.certPem);
  writeFileSync(join(dataDir, "renewed.key"), renewed.keyPem, { mode: 0o600 });
  const upd = await opencmg(["cmg", "update", "live", "--server-cert", join(dataDir, "renewed.pem"), "--server-key", join(dataDir, "renewed.key")]);
  assert.equal(upd.code, 0, upd.stderr);
  for (const port of [clientBase, clientBase + 1]) await until(`instance at ${port} to serve the renewed certificate`, async () => (await servedThumbprint(port)) === renewed.thumbprint || undefined, 120_000);
  assert.equal(await viaSession(), 200, "the session opened before the renewal still works");
  assert.equal(sessionClosed, false);
  // A restarted instance starts with the renewed certificate too: the bundle was rewritten.
  await until("the bundle to hold the renewed certificate", () => readFileSync(join(dataDir, "cmg", "live", "server.pem"), "utf8").includes(renewed.certPem.trim().split("\n")[1]!) || undefined, 120_000);

  mark("renewed");
  // 2. Scale up to 3: the provider starts instance 2, the connection point dials it, Ready again.
  const before3 = client.ok;
  assert.equal((await opencmg(["cmg", "update", "live", "--instances", "3"])).code, 0);
  const three = await until("Ready with 3 instances", async () => {
    const v = await show();
    return v.status === "Ready" && v.instances.length === 3 ? v : undefined;
  }, 120_000);
  assert.ok(three.instances[2]!.connectionPoints.some((c) => c.connected));
  const agent3 = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN } });
  const r3 = await request(`https://127.0.0.1:${clientBase + 2}/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request?instance=2`, { dispatcher: agent3 });
  assert.equal(r3.statusCode, 200, await r3.body.text());
  await agent3.close();
  assert.equal(await servedThumbprint(clientBase + 2), renewed.thumbprint, "the new instance starts with the renewed certificate");

  mark("scaled to 3");
  // 3. Scale back to 2: instance 2 stops (its port closes), Ready with 2.
  assert.equal((await opencmg(["cmg", "update", "live", "--instances", "2"])).code, 0);
  await until("Ready with 2 instances", async () => {
    const v = await show();
    return v.status === "Ready" && v.instances.length === 2 ? v : undefined;
  }, 120_000);
  await until("instance 2 to stop listening", async () => !(await listening(clientBase + 2)) || undefined, 120_000);
  await until("two instance processes (the third one drained and exited)", () => childrenOf(supervisor.pid!).length === 2 || undefined, 120_000);
  assert.ok(client.ok > before3, "requests went on during the scaling");

  mark("scaled to 2");
  // 4. A second trusted root added (the first kept), then removed again.
  writeFileSync(join(dataDir, "root2.pem"), pki.root2.certPem);
  const add = await opencmg(["cmg", "update", "live", "--add-trusted-root", join(dataDir, "root2.pem")]);
  assert.equal(add.code, 0, add.stderr);
  const agentRoot2 = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.clientViaRoot2.certPem, key: pki.clientViaRoot2.keyPem, servername: FQDN } });
  const viaRoot2 = async (): Promise<number> => {
    const r = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request?root2=1`, { dispatcher: agentRoot2 });
    await r.body.dump();
    return r.statusCode;
  };
  await until("a client of the second root to get in", async () => (await viaRoot2()) === 200 || undefined, 120_000);
  const two = await show();
  assert.deepEqual(two.trustedRoots.map((r) => r.thumbprint), [pki.root.thumbprint, pki.root2.thumbprint], "the first root is kept");
  const rm = await opencmg(["cmg", "update", "live", "--remove-trusted-root", pki.root2.thumbprint]);
  assert.equal(rm.code, 0, rm.stderr);
  await until("a client of the removed root to be refused", async () => (await viaRoot2()) === 403 || undefined, 120_000);
  await agentRoot2.close();
  assert.equal(await viaSession(), 200);

  mark("root added and removed");
  await client.stop();
  assert.deepEqual(client.failures, [], `${client.failures.length} of ${client.ok + client.failures.length} requests failed`);
  assert.ok(client.ok >= 20, `requests made: ${client.ok}`);
  assert.equal(sessionClosed, false, "the HTTP/2 session opened before the changes was never closed");
  session.close();
  assert.equal((await show()).status, "Ready");
});

it("cmg stop and cmg start: Stopped with its instances gone, then Ready again", async () => {
  const stop = await opencmg(["cmg", "stop", "live"]);
  assert.equal(stop.code, 0, stop.stderr);
  const stopped = await until("Stopped", async () => {
    const v = await show();
    return v.status === "Stopped" ? v : undefined;
  }, 120_000);
  assert.match(stopped.statusReason, /stopped by an administrator/);
  await until("no instance process", () => childrenOf(supervisor.pid!).length === 0 || undefined, 120_000);
  assert.equal(await listening(clientBase), false);
  assert.equal(supervisor.exitCode, null, "the supervisor waits for a start");
  // A stopped CMG is no connection point failure: the component is OK and says why it holds no
  // tunnel. The connection point learns of the stop at its next poll of the site: wait for it
  // (bounded), then assert exactly, so a component left Critical or missing fails.
  const component = async () => {
    const site = await openSite({ dataDir });
    try {
      const c = (await site.services.status.components("cp01.contoso.test")).find((x) => x.component === "SMS_CLOUD_PROXYCONNECTOR");
      return { status: c?.status, reason: c?.reason };
    } finally {
      await site.close();
    }
  };
  let comp = await component();
  await until(`the connection point's component to say the CMG is stopped (${JSON.stringify(comp)})`, async () => {
    comp = await component();
    return comp.status === "OK" || undefined;
  }, 60_000).catch(() => undefined);
  assert.deepEqual(comp, { status: "OK", reason: "CMG live is stopped: no tunnels to keep" });

  const start = await opencmg(["cmg", "start", "live"]);
  assert.equal(start.code, 0, start.stderr);
  assert.match(start.stdout, /the process that runs its instances here/);
  const v = await until("Ready again", async () => {
    const x = await show();
    return x.status === "Ready" ? x : undefined;
  }, 120_000);
  assert.equal(v.runState, "running");
});

it("cmg delete refuses the last Ready CMG while internet clients exist, then with --force leaves no process, port or key behind", async () => {
  const site = await openSite({ dataDir });
  try {
    await site.services.clients.registerWithCertificate({ name: "PC-001", thumbprint: pki.client.thumbprint, subject: "CN=PC-001", connectionType: "internet", rootThumbprint: pki.root.thumbprint });
  } finally {
    await site.close();
  }
  // The root every internet client chains to cannot be removed without --force.
  const lockout = await opencmg(["cmg", "update", "live", "--remove-trusted-root", pki.root.thumbprint]);
  assert.equal(lockout.code, 2, lockout.stderr);
  assert.match(lockout.stderr, /PC-001/);
  assert.match(lockout.stderr, /OpenCMG Test Issuing CA.*would chain to no trusted root/);

  const refused = await opencmg(["cmg", "delete", "live"]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /last Ready CMG/);
  assert.match(refused.stderr, /every 24 hours/);
  assert.equal((await show()).status, "Ready", "nothing changed");

  const instancePids = childrenOf(supervisor.pid!);
  assert.equal(instancePids.length, 2);
  const del = await opencmg(["cmg", "delete", "live", "--force"]);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, /Deleted CMG live/);
  await until("the supervisor to exit", () => supervisor.exitCode !== null || supervisor.signalCode !== null || undefined, 120_000);
  for (const pid of instancePids) assert.equal(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "), false, `instance process ${pid} is gone`);
  for (const port of [clientBase, clientBase + 1, tunnelBase, tunnelBase + 1]) assert.equal(await listening(port), false, `nothing listens on ${port}`);
  assert.equal(existsSync(join(dataDir, "cmg", "live")), false, "the bundle and its keys are removed");
  const gone = await opencmg(["cmg", "show", "live"]);
  assert.equal(gone.code, 2, "cmg show: not found");
  const s2 = await openSite({ dataDir });
  try {
    assert.deepEqual((await s2.services.status.components("cp01.contoso.test")).filter((c) => c.component === "SMS_CLOUD_PROXYCONNECTOR"), [], "no component state left");
    assert.deepEqual((await s2.services.roles.list("cp01.contoso.test")).map((r) => r.kind), [], "the connection point role went with its CMG");
  } finally {
    await s2.close();
  }
  // The connection point process ended its tunnels and stays idle without writing anything back.
  const log = readFileSync(join(dataDir, "logs", "CMGService.log"), "utf8");
  assert.match(log, /CMG live was deleted at the site: ending every tunnel/);
  connectionPoint.kill("SIGTERM");
  await until("the connection point to exit", () => connectionPoint.exitCode !== null || connectionPoint.signalCode !== null || undefined, 120_000);
  const s3 = await openSite({ dataDir });
  try {
    assert.deepEqual((await s3.services.status.components("cp01.contoso.test")).filter((c) => c.component === "SMS_CLOUD_PROXYCONNECTOR"), [], "still none after the connection point stopped");
  } finally {
    await s3.close();
  }
});
