/**
 * The upgrade of docs/operations.md ("Upgrade"), from the previous release's archive to this
 * tree's, with devices cycling through the gateway all along and none of their cycles failing.
 *
 * The previous release is test/fixtures/releases/opencmg-0.1.0.tgz (its README says how it was
 * made: a clone need not hold the history to rebuild it). Both archives are installed as
 * release.test.ts installs one (`npm install --omit=dev --omit=optional`, the SQLite driver linked
 * above the installs), each in a folder of its own, and every process runs from one of them:
 *
 * - the site server: `site serve` (with the join listener) and `mp serve` on one data folder;
 * - cp01, a connection point on the site's data folder (it reads the database), and cp02, one on
 *   a server that joined the site (its own folder, no database);
 * - a CMG with the external provider and two instances, `gateway serve` each, on addresses of
 *   their own (127.0.0.21 and .22) behind one service name the devices resolve to both;
 * - two devices (one with a PKI certificate, one with a bulk token), each cycling in a loop:
 *   `client send-status`, then `client run --once`, of the OLD release. Clients are upgraded last
 *   (operations.md), so an old client is what meets every mix of old and new servers; the new
 *   client is run on the same device folders once the servers are done.
 *
 * The upgrade, in the documented order: stop the old `site serve`, start the new one on the same
 * data folder (it migrates the database; the old management point and connection points go on
 * reading it); then cp01, then cp02; then instance 0, then instance 1, each only once the previous
 * one serves again. Between stopping an old process and starting its new one, every device
 * completes a cycle: the device whose instance is stopped moves to the other one within its cycle.
 * Every cycle must succeed, and the site must hold every status message a device sent.
 *
 * The management point is not in the loop: its restart is a gap for the devices it serves (their
 * uploads wait in their queues), so it is upgraded after the instances, and the new clients' cycles
 * go through it. An old management point serving the new site's database is part of what the loop
 * checks.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { freePort, freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const PREVIOUS = join(ROOT, "test", "fixtures", "releases", "opencmg-0.1.0.tgz");
const NAME = "cmg.contoso.test";
const ADDRESSES = ["127.0.0.21", "127.0.0.22"];
const CPS = ["cp01.contoso.test", "cp02.contoso.test"];
const MP = "mp01.contoso.test";
const STATUS_ID = 10002;

const root = tempDir("opencmg-upgrade-");
const procs = new Set<ChildProcess>();

/** npm without what an npm that started this test passes down about its own project (as release.test.ts). */
const NPM_OWN = /^npm_(lifecycle_|package_|command$|execpath$|node_execpath$|config_(local_prefix|global_prefix|prefix|global|omit|include|only|production|dev|ignore_scripts|save|package_lock|workspaces?)$)/i;
const npmEnv = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([k]) => !NPM_OWN.test(k)));
/** What the installed commands run with: no data or client folder from this shell. */
const ENV = { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "", OPENCMG_DATABASE: "" };

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, env: npmEnv(), encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** One release installed in a folder of its own; `bin` is its `opencmg`. */
interface Release {
  version: string;
  bin: string;
}
function install(host: string, archive: string): Release {
  mkdirSync(host, { recursive: true });
  writeFileSync(join(host, "package.json"), '{ "private": true }\n');
  run("npm", ["install", "--omit=dev", "--omit=optional", "--prefer-offline", "--no-audit", "--no-fund", archive], host);
  const pkg = join(host, "node_modules", "opencmg");
  return { version: (JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as { version: string }).version, bin: join(pkg, "bin", "opencmg.mjs") };
}

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}
/** Runs a release's `opencmg ARGS` to its end (asynchronously: the devices cycle meanwhile). */
function opencmg(rel: Release, args: string[], input = ""): Promise<Cli> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [rel.bin, ...args], { cwd: root, env: ENV, stdio: ["pipe", "pipe", "pipe"] });
    procs.add(c);
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => c.kill("SIGKILL"), 120_000);
    c.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    c.on("close", (code) => {
      clearTimeout(timer);
      procs.delete(c);
      resolve({ code, stdout, stderr });
    });
    c.stdin.end(input);
  });
}
async function ok(rel: Release, args: string[], input?: string): Promise<string> {
  const r = await opencmg(rel, args, input);
  assert.equal(r.code, 0, `opencmg ${rel.version} ${args.join(" ")}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A long-running `opencmg ... serve` of one release. */
interface Service {
  name: string;
  rel: Release;
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}
async function serve(name: string, rel: Release, args: string[], ready: RegExp): Promise<Service> {
  const child = spawn(process.execPath, [rel.bin, ...args], { cwd: root, env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  procs.add(child);
  let out = "";
  // The tail only: the services log every request on stdout.
  const add = (d: string): void => void (out = (out + d).slice(-64_000));
  child.stdout!.setEncoding("utf8").on("data", add);
  child.stderr!.setEncoding("utf8").on("data", add);
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => (procs.delete(child), r(code))));
  const s: Service = { name, rel, child, out: () => out, exit };
  await until(`${name} (${rel.version}) to start`, () => ready.test(out) || (child.exitCode !== null && assert.fail(`${name} (${rel.version}) exited ${child.exitCode}: ${out}`)), 120_000);
  return s;
}
/** SIGTERM, as `systemctl stop` sends; the service stops cleanly. */
async function stop(s: Service): Promise<void> {
  if (s.child.exitCode === null) s.child.kill("SIGTERM");
  const code = await Promise.race([s.exit, new Promise<"hung">((r) => setTimeout(() => r("hung"), 60_000).unref())]);
  assert.equal(code, 0, `${s.name} (${s.rel.version}) stopped with ${String(code)}: ${s.out()}`);
}

async function httpText(url: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: r.status, text: await r.text() };
  } catch {
    return undefined;
  }
}

let prev: Release;
let next: Release;
let data: string;
let bundle: string;
let rootFile: string;
const ports = { api: 0, join: 0, mp: 0, client: 0, tunnel: 0, metrics: 0, cpMetrics: [0, 0] };
const svc: { site?: Service; mp?: Service; cps: Service[]; gateways: Service[] } = { cps: [], gateways: [] };
const cpFolder = (i: number): string => (i === 0 ? data : join(root, "cp02"));

function siteArgs(): string[] {
  return ["--data", data, "site", "serve", "--listen", `127.0.0.1:${ports.api}`, "--insecure-http", "--join-listen", `127.0.0.1:${ports.join}`];
}
function cpArgs(i: number): string[] {
  return ["--data", cpFolder(i), "connection-point", "serve", "--server", CPS[i]!, "--metrics-port", String(ports.cpMetrics[i])];
}
const gatewayArgs = (i: number): string[] => ["gateway", "serve", "--config", join(bundle, `instance-${i}.json`)];
const mpArgs = (): string[] => ["--data", data, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${ports.mp}`, "--trusted-root", rootFile];

/** Instance i answers /healthz 200 and holds tunnels from both connection points; each of them holds tunnels to it. */
async function serving(i: number): Promise<void> {
  await until(`instance ${i} to serve with tunnels from ${CPS.join(" and ")}`, async () => {
    const health = await httpText(`http://127.0.0.1:${ports.metrics + i}/healthz`);
    const metrics = await httpText(`http://127.0.0.1:${ports.metrics + i}/metrics`);
    if (health?.status !== 200 || !metrics) return false;
    return CPS.every((cp) => new RegExp(`opencmg_gateway_tunnel_sessions\\{[^}]*connection_point="${cp.replace(/\./g, "\\.")}"[^}]*\\} [1-9]`).test(metrics.text));
  }, 120_000);
}
/** Connection point i holds a tunnel to every instance. */
async function dialled(i: number): Promise<void> {
  await until(`${CPS[i]} to hold tunnels to both instances`, async () => {
    const m = await httpText(`http://127.0.0.1:${ports.cpMetrics[i]}/metrics`);
    return m !== undefined && ADDRESSES.every((a) => new RegExp(`opencmg_connection_point_tunnels\\{[^}]*gateway="${a.replace(/\./g, "\\.")}:${ports.tunnel}"[^}]*\\} [1-9]`).test(m.text));
  }, 120_000);
}

/** A device: its client folder, how it reaches the CMG, and what its cycles did. */
interface Device {
  name: string;
  dir: string;
  cycles: number;
  /** Texts of the status messages its successful cycles uploaded. */
  sent: string[];
  failures: string[];
  served: Record<string, number>;
}
const devices: Device[] = [];
const resolveArg = ["--resolve", `${NAME}=${ADDRESSES.join(",")}`];

/** One cycle of `rel`'s client: a status message queued, then `client run --once`; a failure is recorded, not thrown. */
async function cycle(rel: Release, d: Device): Promise<void> {
  const n = ++d.cycles;
  const text = `${d.name} cycle ${n} (client ${rel.version})`;
  const queued = await opencmg(rel, ["client", "send-status", "--client-dir", d.dir, "--id", String(STATUS_ID), "--text", text]);
  if (queued.code !== 0) {
    d.failures.push(`cycle ${n}: send-status: ${queued.stderr}`);
    return;
  }
  const r = await opencmg(rel, ["--json", "client", "run", "--once", "--client-dir", d.dir, "--location-interval", "1s", ...resolveArg]);
  let report: { errors?: string[]; uploaded?: number; address?: string | null; connectionType?: string } = {};
  try {
    report = JSON.parse(r.stdout) as typeof report;
  } catch {
    // an exit without a report: counted below
  }
  if (r.code !== 0 || (report.errors ?? ["no report"]).length > 0 || report.uploaded !== 1 || report.connectionType !== "internet") {
    d.failures.push(`cycle ${n} (client ${rel.version}): exit ${r.code}, ${JSON.stringify(report)}: ${r.stderr.trim()}`);
    return;
  }
  d.sent.push(text);
  d.served[report.address ?? "?"] = (d.served[report.address ?? "?"] ?? 0) + 1;
}

/** The devices cycling with the old client until stopped; `settled()` waits for a full cycle of each that starts after the call. */
function cycling(rel: Release): { settled: (what: string) => Promise<void>; stop: () => Promise<void> } {
  let stopping = false;
  const started = devices.map(() => 0);
  const finished = devices.map(() => 0);
  const loops = devices.map(async (d, i) => {
    while (!stopping) {
      started[i]!++;
      await cycle(rel, d);
      finished[i]!++;
    }
  });
  return {
    async settled(what) {
      // A cycle that starts after this call has to have finished (the one running may have started before).
      const need = started.map((s) => s + 1);
      await until(`a cycle of every device ${what}`, () => finished.every((f, i) => f >= need[i]!), 180_000);
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

before(async () => {
  assert.ok(existsSync(join(ROOT, "dist", "cli", "main.js")), "build first: npm run build");
  assert.ok(existsSync(PREVIOUS), `the previous release's archive: ${PREVIOUS}`);
  // This tree's archive (as release.test.ts makes it), and both releases installed side by side.
  const out = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", root], ROOT);
  const current = join(root, (JSON.parse(out) as { filename: string }[])[0]!.filename);
  // The site host's SQLite driver, above both installs (release.test.ts says why).
  mkdirSync(join(root, "node_modules"));
  symlinkSync(realpathSync(join(ROOT, "node_modules", "better-sqlite3")), join(root, "node_modules", "better-sqlite3"));
  prev = install(join(root, "prev"), PREVIOUS);
  next = install(join(root, "next"), current);
  assert.equal(prev.version, "0.1.0");
  assert.equal(next.version, (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version);
  assert.notEqual(next.version, prev.version);
  assert.equal((await ok(prev, ["--version"])).trim(), prev.version);
  assert.equal((await ok(next, ["--version"])).trim(), next.version);

  // The layout, built with the old release's commands.
  data = join(root, "data");
  const pki = await makeTestPki({ serverName: NAME });
  const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));
  rootFile = file("root.pem", pki.root.certPem);
  Object.assign(ports, { api: await freePort(), join: await freePort(), mp: await freePort(), client: await freePort(), tunnel: await freePort(), metrics: await freePortRange(2), cpMetrics: [await freePort(), await freePort()] });
  const site = (args: string[]): Promise<string> => ok(prev, ["--data", data, ...args]);
  await site(["site", "init"]);
  for (const s of [MP, ...CPS]) await site(["server", "add", s]);
  const mpRole = (JSON.parse(await site(["--json", "role", "add", MP, "management-point", "--allow-cmg-traffic", "--internal-url", `https://127.0.0.1:${ports.mp}`])) as { id: number }).id;
  await site(["cmg", "create", "cmg1", "--server-cert", file("server.pem", pki.server.certPem), "--server-key", file("server.key", pki.server.keyPem), "--instances", "2",
    "--trusted-root", rootFile, "--intermediate", file("intermediate.pem", pki.intermediate.certPem), "--no-crl-check", "--provider", "external",
    "--instance-addresses", ADDRESSES.join(","), "--client-port", String(ports.client), "--tunnel-port", String(ports.tunnel), "--metrics-port", String(ports.metrics)]);
  for (const cp of CPS) await site(["role", "add", cp, "cmg-connection-point", "--cmg", "cmg1"]);
  bundle = join(root, "bundle");
  await site(["cmg", "bundle", "cmg1", "--out", bundle]);

  svc.site = await serve("site serve", prev, siteArgs(), /serving the admin API/);
  const joinUrl = /servers join at (https:\/\/[^;\s]+)/.exec(svc.site.out())?.[1];
  assert.ok(joinUrl, svc.site.out());
  svc.mp = await serve("mp serve", prev, mpArgs(), /serving https/);
  for (const i of [0, 1]) svc.gateways[i] = await serve(`instance ${i}`, prev, gatewayArgs(i), /gateway \S+ listening/);
  // cp02 joins the site from a folder of its own.
  const token = JSON.parse(await site(["--json", "server", "join-token", "create", CPS[1]!, "--lifetime", "60"])) as { token: string; siteCaSha256: string };
  await ok(prev, ["--data", cpFolder(1), "server", "join", "--site", joinUrl, "--site-ca-sha256", token.siteCaSha256, "--token", "-"], token.token + "\n");
  for (const i of [0, 1]) svc.cps[i] = await serve(CPS[i]!, prev, cpArgs(i), /Ctrl-C stops it/);
  for (const i of [0, 1]) await serving(i);

  // The devices: one with a PKI client certificate, one with a bulk registration token.
  const bulk = (JSON.parse(await site(["--json", "token", "create-bulk", "--lifetime", "60"])) as { token: string }).token;
  const pc1: Device = { name: "PC-1", dir: join(root, "pc1"), cycles: 0, sent: [], failures: [], served: {} };
  await ok(prev, ["client", "install", "--client-dir", pc1.dir, "--name", pc1.name, "--always-internet", "--mp", `https://${NAME}:${ports.client}/CCM_Proxy_MutualAuth/${mpRole}`,
    "--cert", file("client.pem", pki.client.certPem), "--key", file("client.key", pki.client.keyPem), "--ca", rootFile, ...resolveArg]);
  const pc2: Device = { name: "PC-2", dir: join(root, "pc2"), cycles: 0, sent: [], failures: [], served: {} };
  await ok(prev, ["client", "install", "--client-dir", pc2.dir, "--name", pc2.name, "--always-internet", "--mp", `https://${NAME}:${ports.client}/CCM_Proxy_ServerAuth/${mpRole}`,
    "--token", "-", "--ca", rootFile, ...resolveArg], bulk + "\n");
  devices.push(pc1, pc2);
});

after(async () => {
  for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

it(`0.1.0 to this tree's release, in the documented order, with devices cycling: none of their cycles fails`, async () => {
  const loop = cycling(prev);
  try {
    await loop.settled("on the old release");

    // 2. The site server: the new `site serve` on the same data folder migrates the database; the
    //    old management point and connection points go on reading it.
    await stop(svc.site!);
    await loop.settled("with no site serve running");
    svc.site = await serve("site serve", next, siteArgs(), /serving the admin API/);
    const openapi = (await (await fetch(`http://127.0.0.1:${ports.api}/api/v1/openapi.json`)).json()) as { info: { version: string } };
    assert.equal(openapi.info.version, next.version, "the new site serves");
    // The old connection points read the new site: cp01 its database, cp02 its join API. A change
    // made at the new site reaches both (each logs the new interval when it reads it).
    await ok(next, ["--data", data, "settings", "set", "traffic-report-interval", "3m"]);
    for (const i of [0, 1]) {
      const log = join(cpFolder(i), "logs", "CMGService.log");
      await until(`the old ${CPS[i]} to read the new site's configuration`, () => existsSync(log) && readFileSync(log, "utf8").includes("Traffic reports every 180 s"), 120_000);
    }

    // 3. The connection points, one at a time: cp01 (reads the database), cp02 (joined). (The
    //    cycles while the next part is stopped are also those with the previous one upgraded.)
    for (const i of [0, 1]) {
      await stop(svc.cps[i]!);
      await loop.settled(`with ${CPS[i]} stopped`);
      svc.cps[i] = await serve(CPS[i]!, next, cpArgs(i), /Ctrl-C stops it/);
      await dialled(i);
      for (const g of [0, 1]) await serving(g);
    }

    // 4. The instances, one at a time, each once the previous one serves again.
    for (const i of [0, 1]) {
      await stop(svc.gateways[i]!);
      await loop.settled(`with instance ${i} stopped (its devices move to the other)`);
      svc.gateways[i] = await serve(`instance ${i}`, next, gatewayArgs(i), /gateway \S+ listening/);
      await serving(i);
      for (const cp of [0, 1]) await dialled(cp);
    }
    await loop.settled("on the new release (the clients old)");
  } finally {
    await loop.stop();
  }
  for (const d of devices) console.log(`${d.name}: ${d.cycles} cycles of the 0.1.0 client, by instance ${JSON.stringify(d.served)}`);
  assert.deepEqual(devices.flatMap((d) => d.failures.map((f) => `${d.name} ${f}`)), [], "no device cycle failed during the upgrade");
  // Each device prefers one instance and cycled while it was stopped: served by the other then.
  for (const d of devices) assert.deepEqual(Object.keys(d.served).sort(), ADDRESSES, `${d.name} was served by both instances`);

  // The management point last of the servers, then the clients: the new client on the same device
  // folders (registration, token and queue carry over), through every part of the new release.
  await stop(svc.mp!);
  svc.mp = await serve("mp serve", next, mpArgs(), /serving https/);
  for (const d of devices) {
    await cycle(next, d);
    assert.deepEqual(d.failures, [], `${d.name} with the new client`);
  }

  // The site holds every message the devices' cycles uploaded, through every mix of releases.
  const token = readFileSync(join(data, "admin.token"), "utf8").trim();
  const res = await fetch(`http://127.0.0.1:${ports.api}/api/v1/status/messages?limit=1000`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const stored = new Set(((await res.json()) as { items: { messageId: number; text: string }[] }).items.filter((m) => m.messageId === STATUS_ID).map((m) => m.text));
  for (const d of devices) assert.deepEqual(d.sent.filter((t) => !stored.has(t)), [], `${d.name}'s messages at the site`);
});
