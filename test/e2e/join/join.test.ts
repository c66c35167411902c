/**
 * A connection point on a server that joined the site, as an administrator builds it: `site serve
 * --join-listen` at the site, `server join-token create`, then on the joining server (its own data
 * folder) `server join --token -` and `connection-point serve`, which reads everything from the
 * site over mutually authenticated TLS. The joined folder holds its key, its certificate, the site
 * CA, the site's URL and its logs: no database, no site key. A CMG instance (`cmg start`) and a
 * device served through it; a used, an expired and a revoked token refused; a server whose role is
 * removed gets no configuration.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { JoinedHost } from "../../../src/join/client.ts";
import type { OpenCmgError } from "../../../src/errors.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const FQDN = "cmg.contoso.test";
const CP = "cp01.contoso.test";
let pki: TestPki;
let siteDir: string;
let backend: Server;
let clientBase: number;
let mpRoleId: string;
let joinUrl: string;
let apiUrl: string;
let reader: OpenedSite;
const children: ChildProcess[] = [];

/** Runs `opencmg --data DIR ARGS` (standard input `input`) to its end. */
function opencmg(dir: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [OPENCMG_BIN, "--data", dir, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(input ?? "");
  });
}

/** Starts a long-running `opencmg` process; resolves with it and the first match of `ready` in its standard error. */
async function startProcess(dir: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", dir, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-8000)));
  const match = await until(`${args.join(" ")} to start`, () => ready.exec(err) ?? (child.exitCode !== null ? assert.fail(`${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined), 120_000);
  return { child, match };
}

async function createToken(lifetime = "10"): Promise<{ id: string; token: string; siteCaSha256: string }> {
  const r = await opencmg(siteDir, ["--json", "server", "join-token", "create", CP, "--lifetime", lifetime]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: string; token: string; siteCaSha256: string };
}

function joinWith(dir: string, token: string, pin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return opencmg(dir, ["server", "join", "--site", joinUrl, "--site-ca-sha256", pin, "--token", "-"], token + "\n");
}

/** Every file under `dir`, relative, sorted. */
function filesOf(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

before(async () => {
  pki = await makeTestPki({ serverName: FQDN });
  siteDir = tempDir();
  backend = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const backendPort = (backend.address() as { port: number }).port;
  clientBase = await freePortRange(1);
  const tunnelBase = await freePortRange(1);
  const site = await openSite({ dataDir: siteDir });
  try {
    await initSite(site, { code: "P01", name: "E2E" });
    const { servers, roles, cmgs } = site.services;
    await cmgs.create({
      name: "joined",
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      instances: 1,
      trustedRoots: [pki.root.certPem],
      intermediates: [pki.intermediate.certPem],
      crlCheck: false,
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: tunnelBase, metricsPortBase: 0 },
    });
    await servers.add({ fqdn: "mp01.contoso.test" });
    mpRoleId = String((await roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: `http://127.0.0.1:${backendPort}` })).id);
    await servers.add({ fqdn: CP });
    await roles.add(CP, "cmg-connection-point", { cmgName: "joined" });
  } finally {
    await site.close();
  }
  reader = await openSite({ dataDir: siteDir });
  const served = await startProcess(siteDir, ["site", "serve", "--listen", "127.0.0.1:0", "--insecure-http", "--no-local-cmgs", "--join-listen", "127.0.0.1:0"], /admin API on (http:\/\/[^\s]+) .*servers join at (https:\/\/[^;\s]+)/);
  apiUrl = served.match[1]!;
  joinUrl = served.match[2]!;
  await startProcess(siteDir, ["cmg", "start", "joined", "--poll-interval", "0.3"], /Ctrl-C stops them/);
});

after(async () => {
  await reader?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await new Promise((r) => backend.close(r));
});

let cpDir: string;

it("joins with a one-time token: the joined folder holds its key, its certificate and the site CA; the token joins once", async () => {
  const t = await createToken();
  cpDir = tempDir();
  const joined = await joinWith(cpDir, t.token, t.siteCaSha256);
  assert.equal(joined.code, 0, joined.stderr);
  assert.deepEqual(filesOf(cpDir), ["host.key", "host.pem", "join.json", "site-ca.pem"]);
  const listed = JSON.parse((await opencmg(siteDir, ["--json", "server", "join-token", "list"])).stdout) as { id: string; state: string }[];
  assert.equal(listed.find((x) => x.id === t.id)?.state, "joined");

  const again = await joinWith(tempDir(), t.token, t.siteCaSha256);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /was used already/);
  // A wrong pin: nothing is sent.
  const other = await createToken();
  const pinned = await joinWith(tempDir(), other.token, "00".repeat(32));
  assert.notEqual(pinned.code, 0);
  assert.match(pinned.stderr, /not the 0{64} printed with the join token/);
});

it("refuses an expired and a revoked token; a used token revoked ends its server's configuration", async () => {
  // A token created two hours ago with a one-hour lifetime.
  const past = await openSite({ dataDir: siteDir, now: () => new Date(Date.now() - 2 * 3600_000) });
  let expired;
  try {
    expired = await past.services.joins.createToken({ server: CP, lifetimeMinutes: 60 });
  } finally {
    await past.close();
  }
  const e = await joinWith(tempDir(), expired.token, expired.siteCaSha256);
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /expired at/);

  const t = await createToken();
  const revoked = await opencmg(siteDir, ["server", "join-token", "revoke", t.id]);
  assert.equal(revoked.code, 0, revoked.stderr);
  const r = await joinWith(tempDir(), t.token, t.siteCaSha256);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /was revoked/);
  // A used token revoked: the server that joined with it is answered nothing more.
  const used = await createToken();
  const otherDir = tempDir();
  const j = await joinWith(otherDir, used.token, used.siteCaSha256);
  assert.equal(j.code, 0, j.stderr);
  const other = new JoinedHost(otherDir);
  try {
    assert.equal(((await other.get("/config")) as { server: string }).server, CP);
    assert.equal((await opencmg(siteDir, ["server", "join-token", "revoke", used.id])).code, 0);
    await assert.rejects(other.get("/config"), (e: OpenCmgError) => e.kind === "forbidden" && /was revoked/.test(e.message));
  } finally {
    await other.close();
  }
  const audit = await reader.services.audit.list({ limit: 200 });
  assert.ok(audit.items.some((a) => a.action === "joins.revokeToken" && a.object === `join-token/${t.id}`), "the revocation is audited");
  assert.ok(!JSON.stringify(audit).includes(t.token.split(".")[1]!), "no token secret in the audit log");
});

it("creates, lists and revokes join tokens over the admin API, never listing a token", async () => {
  const auth = { authorization: `Bearer ${readFileSync(join(siteDir, "admin.token"), "utf8").trim()}`, "content-type": "application/json" };
  const created = await request(`${apiUrl}/api/v1/servers/${CP}/join-tokens`, { method: "POST", headers: auth, body: JSON.stringify({ lifetimeMinutes: 5 }) });
  const t = (await created.body.json()) as { id: string; token: string; siteCaSha256: string };
  assert.equal(created.statusCode, 201, JSON.stringify(t));
  const listed = await request(`${apiUrl}/api/v1/join-tokens`, { headers: auth });
  const text = await listed.body.text();
  assert.equal(listed.statusCode, 200, text);
  assert.equal((JSON.parse(text) as { id: string; state: string }[]).find((x) => x.id === t.id)?.state, "active");
  assert.ok(!text.includes(t.token.split(".")[1]!), "the list never holds a token");
  const revoked = await request(`${apiUrl}/api/v1/join-tokens/${t.id}`, { method: "DELETE", headers: { authorization: auth.authorization } });
  assert.equal(((await revoked.body.json()) as { state: string }).state, "revoked");
  const r = await joinWith(tempDir(), t.token, t.siteCaSha256);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /was revoked/);
});

it("serves a device through the joined connection point, which has no database and no site key", async () => {
  const cp = await startProcess(cpDir, ["connection-point", "serve", "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
  await until("the CMG to be Ready (tunnels reported over the join)", async () => ((await reader.services.cmgs.show("joined")).status === "Ready" ? true : undefined), 120_000);
  const device = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN } });
  try {
    const res = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${mpRoleId}/ccm_system/request?device=1`, { dispatcher: device });
    const body = await res.body.text();
    assert.equal(res.statusCode, 200, body);
    assert.deepEqual(JSON.parse(body), { path: "/ccm_system/request?device=1" });
  } finally {
    await device.close();
  }
  cp.child.kill("SIGTERM");
  await until("the connection point to stop", () => cp.child.exitCode !== null || cp.child.signalCode !== null);
  const files = filesOf(cpDir);
  process.stderr.write(`joined connection point's data folder:\n  ${files.join("\n  ")}\n`);
  const top = files.filter((f) => !f.startsWith("logs/"));
  assert.deepEqual(top, ["host.key", "host.pem", "join.json", "site-ca.pem"]);
  assert.ok(files.filter((f) => f.startsWith("logs/")).every((f) => /^logs\/[\w.-]+\.log$/.test(f)), files.join(", "));
});

it("a joined server whose role is removed fetches no configuration", async () => {
  const host = new JoinedHost(cpDir);
  try {
    assert.deepEqual(((await host.get("/config")) as { roles: { kind: string }[] }).roles.map((r) => r.kind), ["cmg-connection-point"]);
    const removed = await opencmg(siteDir, ["role", "remove", CP, "cmg-connection-point"]);
    assert.equal(removed.code, 0, removed.stderr);
    await assert.rejects(host.get("/config"), (e: OpenCmgError) => e.kind === "forbidden" && /has no role/.test(e.message));
    await assert.rejects(host.get("/connection-point"), (e: OpenCmgError) => e.kind === "forbidden");
    await assert.rejects(host.post("/connection-point/certificate", {}), (e: OpenCmgError) => e.kind === "forbidden");
  } finally {
    await host.close();
  }
});
