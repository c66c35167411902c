/**
 * Every site system server on a host of its own, as an administrator builds them, each with its own
 * data folder: the site (`site serve --join-listen`, PostgreSQL), a connection point, a management
 * point and a software update point that joined it (`server join`), and a gateway instance run from
 * its start-up bundle (`cmg bundle`, `gateway serve`). The management point reads and writes the
 * site database and holds no site key: the site signs the client tokens it hands out and issues its
 * server certificate for its host key. The software update point opens no database: its role and
 * the update metadata come over the join. A device registers with a bulk token and is managed
 * through the gateway; each host's data folder is listed; a host whose role is removed is refused.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { JoinedHost } from "../../../src/join/client.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.ts";
import { until } from "../../helpers/until.ts";

const FQDN = "cmg.contoso.test";
const CP = "cp01.contoso.test";
const MP = "mp01.contoso.test";
const SUP = "sup01.contoso.test";
const UPDATE = { id: "KB5000001", title: "Joined update", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [{ name: "kb5000001.msu", url: "https://upstream.contoso.test/kb5000001.msu", size: 4, sha256: "a".repeat(64) }] };

let pg: TestPostgres;
let database: string;
let pki: TestPki;
let siteDir: string;
let work: string;
let clientBase: number;
let mpPort: number;
let supPort: number;
let mpRoleId: number;
let supRoleId: number;
let joinUrl: string;
let reader: OpenedSite;
const dirs = { cp: "", mp: "", sup: "", gateway: "" };
const children: ChildProcess[] = [];

function opencmg(dir: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [OPENCMG_BIN, "--data", dir, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, OPENCMG_DATABASE: "" } });
    let stdout = "";
    let stderr = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(input ?? "");
  });
}

async function startProcess(dir: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", dir, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENCMG_DATABASE: "" } });
  children.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-8000)));
  await until(`${args.join(" ")} to start`, () => (ready.test(err) ? true : child.exitCode !== null ? assert.fail(`${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined), 120_000);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await until("the process to stop", () => (child.exitCode !== null || child.signalCode !== null ? true : undefined));
}

/** Joins a new data folder as `server`. */
async function joinAs(server: string): Promise<string> {
  const t = await opencmg(siteDir, ["--database", database, "--json", "server", "join-token", "create", server]);
  assert.equal(t.code, 0, t.stderr);
  const { token, siteCaSha256 } = JSON.parse(t.stdout) as { token: string; siteCaSha256: string };
  const dir = tempDir();
  const j = await opencmg(dir, ["server", "join", "--site", joinUrl, "--site-ca-sha256", siteCaSha256, "--token", "-"], token + "\n");
  assert.equal(j.code, 0, j.stderr);
  return dir;
}

/** Every file under `dir`, relative, sorted. */
function filesOf(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

/** The folder's files outside logs/, after checking that logs/ holds only log files. */
function heldFiles(name: string, dir: string): string[] {
  const files = filesOf(dir);
  process.stderr.write(`${name}'s data folder:\n  ${files.join("\n  ")}\n`);
  assert.ok(files.filter((f) => f.startsWith("logs/")).every((f) => /^logs\/[\w.-]+\.log$/.test(f)), files.join(", "));
  return files.filter((f) => !f.startsWith("logs/"));
}

before(async () => {
  pg = await startPostgres();
  database = await pg.createDatabase();
  pki = await makeTestPki({ serverName: FQDN });
  siteDir = tempDir();
  work = tempDir();
  writeFileSync(join(work, "root-ca.pem"), pki.root.certPem);
  clientBase = await freePortRange(1);
  const tunnelBase = await freePortRange(1);
  [mpPort, supPort] = [await freePortRange(1), await freePortRange(1)];
  const site = await openSite({ dataDir: siteDir, databaseUrl: database });
  try {
    await initSite(site, { code: "J01", name: "Joined roles" });
    const { servers, roles, cmgs, updates } = site.services;
    await cmgs.create({
      name: "roles",
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      instances: 1,
      trustedRoots: [pki.root.certPem],
      intermediates: [pki.intermediate.certPem],
      crlCheck: false,
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: tunnelBase, metricsPortBase: 0 },
    });
    for (const s of [CP, MP, SUP]) await servers.add({ fqdn: s });
    await roles.add(CP, "cmg-connection-point", { cmgName: "roles" });
    mpRoleId = (await roles.add(MP, "management-point", { allowCmgTraffic: true, internalUrl: `https://127.0.0.1:${mpPort}` })).id;
    supRoleId = (await roles.add(SUP, "software-update-point", { allowCmgTraffic: true, internalUrl: `https://127.0.0.1:${supPort}`, upstreamUrl: "https://upstream.contoso.test/catalog.json" })).id;
    // What `sup sync` at the site stores.
    await updates.store([UPDATE], "https://upstream.contoso.test/catalog.json");
  } finally {
    await site.close();
  }
  reader = await openSite({ dataDir: siteDir, databaseUrl: database });
  const served = spawn(process.execPath, [OPENCMG_BIN, "--data", siteDir, "--database", database, "site", "serve", "--listen", "127.0.0.1:0", "--insecure-http", "--no-local-cmgs", "--join-listen", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(served);
  let err = "";
  served.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  joinUrl = await until("site serve to start", () => /servers join at (https:\/\/[^;\s]+)/.exec(err)?.[1] ?? (served.exitCode !== null ? assert.fail(err) : undefined), 120_000);
});

after(async () => {
  await reader?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await pg?.stop();
});

it("runs a gateway instance, a connection point, a management point and a software update point on hosts of their own, none holding the site key", async () => {
  // The gateway instance: its start-up bundle, copied to its host's folder.
  dirs.gateway = tempDir();
  const bundled = await opencmg(siteDir, ["--database", database, "cmg", "bundle", "roles", "--out", join(work, "bundle")]);
  assert.equal(bundled.code, 0, bundled.stderr);
  cpSync(join(work, "bundle"), join(dirs.gateway, "bundle"), { recursive: true });
  const gateway = await startProcess(dirs.gateway, ["gateway", "serve", "--config", join(dirs.gateway, "bundle", "instance-0.json"), "--metrics-port", "0"], /listening: clients on/);

  dirs.cp = await joinAs(CP);
  dirs.mp = await joinAs(MP);
  dirs.sup = await joinAs(SUP);
  for (const d of Object.values(dirs)) assert.ok(!existsSync(join(d, "site.key")) && !existsSync(join(d, "site.db")), `${d} holds no site key and no database`);

  const cp = await startProcess(dirs.cp, ["connection-point", "serve", "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
  const mp = await startProcess(dirs.mp, ["--database", database, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${mpPort}`], /management point .* serving/);
  const sup = await startProcess(dirs.sup, ["sup", "serve", "--server", SUP, "--listen", `127.0.0.1:${supPort}`], /software update point .* serving/);
  await until("the CMG to be Ready", async () => ((await reader.services.cmgs.show("roles")).status === "Ready" ? true : undefined), 120_000);

  // A device with no certificate: a bulk token (signed at the site), a client token from the joined MP (signed by the site over the join).
  const bulk = await opencmg(siteDir, ["--database", database, "--json", "token", "create-bulk"]);
  assert.equal(bulk.code, 0, bulk.stderr);
  const tokenUrl = `https://127.0.0.1:${clientBase}/CCM_Proxy_ServerAuth/${mpRoleId}`;
  const clientDir = join(work, "pc1");
  const installed = await opencmg(work, ["client", "install", "--mp", tokenUrl, "--token", "-", "--ca", join(work, "root-ca.pem"), "--name", "PC-JOINED-1", "--client-dir", clientDir, "--always-internet", "--json"], (JSON.parse(bulk.stdout) as { token: string }).token + "\n");
  assert.equal(installed.code, 0, installed.stderr);
  const clientId = (JSON.parse(installed.stdout) as { clientId: string }).clientId;
  const sent = await opencmg(work, ["client", "send-status", "--client-dir", clientDir, "--id", "10801", "--text", "through a joined MP"]);
  assert.equal(sent.code, 0, sent.stderr);
  const run = await opencmg(work, ["client", "run", "--once", "--client-dir", clientDir, "--json"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal((JSON.parse(run.stdout) as { uploaded: number }).uploaded, 1, run.stdout);
  const client = await reader.services.clients.get(clientId);
  assert.equal(client.connectionType, "internet");
  assert.ok(client.tokenKey, "the client token is bound to the device's key");

  // The update metadata from the joined SUP, through the gateway and directly (its certificate from the site CA names 127.0.0.1).
  const device = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN } });
  try {
    const res = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${supRoleId}/SMS_SUP/v1/updates`, { dispatcher: device });
    const body = await res.body.text();
    assert.equal(res.statusCode, 200, body);
    assert.deepEqual((JSON.parse(body) as { updates: { id: string; files: { url: string }[] }[] }).updates.map((u) => [u.id, u.files[0]!.url]), [[UPDATE.id, `content/${UPDATE.id}/kb5000001.msu`]]);
  } finally {
    await device.close();
  }
  const direct = new Agent({ connect: { ca: [readFileSync(join(dirs.sup, "site-ca.pem"), "utf8")] } });
  try {
    const res = await request(`https://127.0.0.1:${supPort}/SMS_SUP/v1/content/${UPDATE.id}/kb5000001.msu`, { dispatcher: direct });
    assert.equal(res.statusCode, 404, "listed, not in this host's content library");
    await res.body.dump();
  } finally {
    await direct.close();
  }

  for (const c of [sup, mp, cp, gateway]) await stop(c);
  const joined = ["host.key", "host.pem", "join.json", "site-ca.pem"];
  assert.deepEqual(heldFiles("connection point", dirs.cp), joined);
  assert.deepEqual(heldFiles("management point", dirs.mp), joined);
  assert.deepEqual(heldFiles("software update point", dirs.sup), joined);
  assert.deepEqual(heldFiles("gateway instance", dirs.gateway), ["bundle/instance-0.json", "bundle/server.key", "bundle/server.pem", "bundle/site-ca.pem", "bundle/tunnel.key", "bundle/tunnel.pem"]);
});

it("a joined management point and software update point whose role is removed are refused by the site, answer so, and do not start again", async () => {
  const mp = await startProcess(dirs.mp, ["--database", database, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${mpPort}`], /management point .* serving/);
  const sup = await startProcess(dirs.sup, ["sup", "serve", "--server", SUP, "--listen", `127.0.0.1:${supPort}`], /software update point .* serving/);
  await startProcess(dirs.gateway, ["gateway", "serve", "--config", join(dirs.gateway, "bundle", "instance-0.json"), "--metrics-port", "0"], /listening: clients on/);
  await startProcess(dirs.cp, ["connection-point", "serve", "--report-interval", "1", "--poll-interval", "0.3"], /dialling every instance/);
  const device = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem, key: pki.client.keyPem, servername: FQDN } });
  try {
    await until("the gateway to relay to the software update point again", async () => {
      const res = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${supRoleId}/SMS_SUP/v1/updates`, { dispatcher: device }).catch(() => undefined);
      await res?.body.dump();
      return res?.statusCode === 200 ? true : undefined;
    }, 120_000);
  } finally {
    await device.close();
  }
  for (const [server, kind] of [[MP, "management-point"], [SUP, "software-update-point"]] as const) {
    const removed = await opencmg(siteDir, ["--database", database, "role", "remove", server, kind]);
    assert.equal(removed.code, 0, removed.stderr);
  }

  // The running management point: the site signs no client token for it any more. A new device is refused by the
  // gateway once the signed settings without the role reached it, by the management point (the site signed nothing) before.
  const bulk = await opencmg(siteDir, ["--database", database, "--json", "token", "create-bulk"]);
  assert.equal(bulk.code, 0, bulk.stderr);
  const installed = await opencmg(work, ["client", "install", "--mp", `https://127.0.0.1:${clientBase}/CCM_Proxy_ServerAuth/${mpRoleId}`, "--token", "-", "--ca", join(work, "root-ca.pem"), "--name", "PC-JOINED-2", "--client-dir", join(work, "pc2"), "--always-internet", "--json"], (JSON.parse(bulk.stdout) as { token: string }).token + "\n");
  assert.notEqual(installed.code, 0);
  assert.match(installed.stderr, /404 unknown_role: role \d+ is not served|503 token_issuer_unavailable/);
  const host = new JoinedHost(dirs.mp);
  try {
    const c = (await reader.services.clients.list()).find((x) => x.tokenKey !== null)!;
    await assert.rejects(host.post("/management-point/client-token", { clientId: c.id, jkt: c.tokenKey }), (e: Error & { kind?: string }) => e.kind === "forbidden" && /no management-point role/.test(e.message));
  } finally {
    await host.close();
  }
  // The running software update point: out of service.
  const direct = new Agent({ connect: { ca: [readFileSync(join(dirs.sup, "site-ca.pem"), "utf8")] } });
  try {
    const res = await request(`https://127.0.0.1:${supPort}/SMS_SUP/v1/updates`, { dispatcher: direct });
    const body = await res.body.text();
    assert.equal(res.statusCode, 503, body);
    assert.match(body, /out of service: the site refuses it/);
  } finally {
    await direct.close();
  }
  await stop(mp);
  await stop(sup);

  const mpAgain = await opencmg(dirs.mp, ["--database", database, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${mpPort}`]);
  assert.equal(mpAgain.code, 1, mpAgain.stderr);
  assert.match(mpAgain.stderr, /mp01\.contoso\.test has no management-point role at this site/);
  const supAgain = await opencmg(dirs.sup, ["sup", "serve", "--server", SUP, "--listen", `127.0.0.1:${supPort}`]);
  assert.equal(supAgain.code, 1, supAgain.stderr);
  assert.match(supAgain.stderr, /sup01\.contoso\.test has no software-update-point role at this site/);
  for (const d of [dirs.mp, dirs.sup]) assert.ok(!existsSync(join(d, "site.key")) && !existsSync(join(d, "site.db")));
});
