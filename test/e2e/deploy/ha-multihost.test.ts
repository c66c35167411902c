/**
 * High availability across hosts, each host a Linux network namespace with its own address
 * (test/helpers/netns.ts) and names served by a real DNS server (dnsmasq, test/helpers/dnsmasq.ts):
 *
 * - site: `site serve` (TLS admin API, join listener) on PostgreSQL, and `mp serve`;
 * - cp1, cp2: each joined with `server join`, running `connection-point serve` (no database);
 * - gw1, gw2: one instance each of one CMG, `gateway serve` from the per-instance start-up bundle
 *   on its own address, ports 443 and 10140; the service name resolves to both;
 * - dev: client agents, one `client run --once` process per cycle, through the service name.
 *
 * Devices cycle; one gateway host's processes are killed (SIGKILL): every device's next cycle is
 * served by the other instance. The gateway starts again and the connection points dial it again.
 * One connection point host is killed: devices are served through the other one; it starts again.
 * Then PostgreSQL stops and starts: every process reconnects by itself, the clients keep what was
 * not acknowledged and send it again, and every acknowledged status message is in the database,
 * once. The longest interruption a device saw is printed, not asserted (the machine is shared).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { queueStatus } from "../../../src/client/folder.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { startDns, type Dns } from "../../helpers/dnsmasq.ts";
import { createLab, type Lab } from "../../helpers/netns.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.ts";
import { until } from "../../helpers/until.ts";

const DOMAIN = "ha.test";
const SITE = `site.${DOMAIN}`;
const CMG = `cmg.${DOMAIN}`;
const CPS = ["cp1", "cp2"] as const;
const GWS = ["gw1", "gw2"] as const;
const DEVICES = 3;
const ENV = { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "", OPENCMG_DATABASE: "" };
/** Hosts and the last part of their address. */
const LAST = { site: 2, cp1: 11, cp2: 12, gw1: 21, gw2: 22, dev: 31 } as const;
type HostName = keyof typeof LAST;

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<void>;
  name: string;
  /** Set when this test stops or kills it. */
  stopping: boolean;
}

let lab: Lab | undefined;
let dns: Dns | undefined;
let pgc: TestPostgres | undefined;
let root: string;
const dirs: Record<HostName, string> = { site: "", cp1: "", cp2: "", gw1: "", gw2: "", dev: "" };
const procs = new Set<Proc>();
let mpRole: string;
let bulkToken: string;
let caFile: string;
const t0 = Date.now();
/** Where the run is, with the time since the file started (read with the figures). */
const mark = (what: string): void => console.log(`ha: ${new Date().toISOString()} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${what}`);
const addr = (h: HostName): string => lab!.hosts[h]!.address;

/** `opencmg ARGS` in host `h`, to its end. */
function opencmg(h: HostName, args: string[], input = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = lab!.spawn(h, process.execPath, [OPENCMG_BIN, ...args], { stdio: ["pipe", "pipe", "pipe"], env: ENV });
    let stdout = "";
    let stderr = "";
    c.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin!.end(input);
  });
}

/** `opencmg --data <site> --database <pg> ARGS` on the site host; must succeed. */
async function siteCli<T = unknown>(args: string[], input = ""): Promise<T> {
  const r = await opencmg("site", ["--data", dirs.site, "--database", pgc!.url, ...args], input);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return (args.includes("--json") ? JSON.parse(r.stdout) : r.stdout) as T;
}

/** Processes that ended without this test stopping or killing them. */
const died: string[] = [];

/**
 * A long-running `opencmg` process on host `h`; resolves once its standard error matches `ready`.
 * Its output goes to `<root>/out/` too (outside every host's data folder), for a failed run.
 */
async function serve(h: HostName, args: string[], ready: RegExp): Promise<Proc> {
  const child = lab!.spawn(h, process.execPath, [OPENCMG_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: ENV });
  const name = `${h}-${args[args.indexOf("serve") - 1]}-${child.pid}`;
  const file = join(root, "out", `${name}.log`);
  let out = "";
  const take = (d: string): void => {
    out = (out + d).slice(-20_000);
    appendFileSync(file, d);
  };
  child.stdout!.setEncoding("utf8").on("data", take);
  child.stderr!.setEncoding("utf8").on("data", take);
  const p: Proc = { child, out: () => out, exit: new Promise((r) => child.once("exit", () => r())), name, stopping: false };
  procs.add(p);
  void p.exit.then(() => {
    procs.delete(p);
    if (!p.stopping) died.push(`${name} (${child.exitCode ?? child.signalCode}): ${out.slice(-2000)}`);
  });
  await until(`${h}: ${args.slice(2, 5).join(" ")} to start`, () => ready.test(out) || (child.exitCode !== null ? assert.fail(`${h}: ${args.join(" ")} exited ${child.exitCode}: ${out}`) : false), 120_000);
  return p;
}

async function startGateway(i: number): Promise<Proc> {
  const p = await serve(GWS[i]!, ["--data", dirs[GWS[i]!], "gateway", "serve", "--config", join(dirs[GWS[i]!], "bundle", `instance-${i}.json`)], /gateway \S+ listening/);
  gateways.set(GWS[i]!, p);
  return p;
}
const startConnectionPoint = (h: (typeof CPS)[number]): Promise<Proc> => serve(h, ["--data", dirs[h], "connection-point", "serve", "--report-interval", "1", "--poll-interval", "1"], /dialling every instance/);

/** SIGKILL to every process of host `h` (its namespace holds only what this test started there). */
async function killHost(h: HostName): Promise<void> {
  const pids = lab!.pids(h);
  assert.ok(pids.length > 0, `${h} runs nothing`);
  for (const p of procs) if (pids.includes(p.child.pid!)) p.stopping = true;
  for (const pid of pids) process.kill(pid, "SIGKILL");
  await until(`${h}'s processes to end`, () => lab!.pids(h).length === 0);
}

/** The gateway processes running, by host. */
const gateways = new Map<string, Proc>();

/** Lines of a process's JSON log (its standard output) written after `since`, matching `re`. */
function logLinesAfter(p: Proc, since: number, re: RegExp): string[] {
  const lines = readFileSync(join(root, "out", `${p.name}.log`), "utf8").split("\n");
  return lines.filter((l) => {
    if (!l.startsWith("{")) return false;
    try {
      const j = JSON.parse(l) as { time: number; msg: string };
      return j.time > since && re.test(j.msg);
    } catch {
      return false; // the line being written
    }
  });
}

/**
 * Each of `pairs` (instance host, connection point) has a ready tunnel opened after `since` (the
 * instances' own logs say so), and each connection point's report reached the site database after
 * `since`.
 */
async function allTunnelsUp(what: string, since: number, pairs: readonly (readonly [string, string])[]): Promise<void> {
  let last = "";
  await until(
    what,
    async () => {
      if (died.length > 0) assert.fail(`a process ended: ${died.join("\n")}`);
      const missing = pairs.filter(([gw, cp]) => logLinesAfter(gateways.get(gw)!, since, new RegExp(`^tunnel #\\d+ \\(${cp}\\.${DOMAIN.replace(".", "\\.")} at [^)]+\\) is ready$`)).length === 0).map(([gw, cp]) => `${cp} -> ${gw}`);
      const show = await siteCli<{ status: string; instances: { connectionPoints: { server: string; connected: boolean; reportedAt: string }[] }[] }>(["cmg", "show", "cmg1", "--json"]);
      last = JSON.stringify({ missing, status: show.status, instances: show.instances.map((i) => i.connectionPoints) });
      const reported = CPS.every((cp) => show.instances.every((i) => i.connectionPoints.some((c) => c.server === `${cp}.${DOMAIN}` && Date.parse(c.reportedAt) > since)));
      return missing.length === 0 && reported;
    },
    120_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last seen: ${last}`);
  });
}

// --- the devices ---------------------------------------------------------------------------

interface Cycle {
  device: number;
  start: number;
  end: number;
  ok: boolean;
  errors: string[];
  address: string | null;
}
const cycles: Cycle[] = [];
/** Every status message text queued, and those a management point acknowledged (its queue file removed). */
const queuedTexts = new Set<string>();
const ackedTexts = new Set<string>();
let devicesRunning = false;
const loops: Promise<void>[] = [];

const deviceDir = (i: number): string => join(dirs.dev, `pc${i}`);
const queueDir = (i: number): string => join(deviceDir(i), "queue");
/** The queued messages of device `i`: file name -> text. */
function queueOf(i: number): Map<string, string> {
  const q = queueDir(i);
  if (!existsSync(q)) return new Map();
  return new Map(
    readdirSync(q)
      .filter((f) => f.endsWith(".json"))
      .map((f) => [f, (JSON.parse(readFileSync(join(q, f), "utf8")) as { text: string }).text]),
  );
}

/** Device `i`: queue a message, one `client run --once`, note what it was told was stored; again until told to stop. */
async function deviceLoop(i: number): Promise<void> {
  let n = 0;
  while (devicesRunning) {
    const text = `ha PC-${i} message ${++n}`;
    queueStatus(deviceDir(i), [{ messageId: 10002, text, component: "CCMExec" }]);
    queuedTexts.add(text);
    const before = queueOf(i);
    const start = Date.now();
    const r = await opencmg("dev", ["client", "run", "--once", "--json", "--client-dir", deviceDir(i)]);
    const end = Date.now();
    const left = queueOf(i);
    for (const [f, t] of before) if (!left.has(f)) ackedTexts.add(t);
    let report: { errors: string[]; address: string | null; uploadFailed: boolean } | undefined;
    try {
      report = JSON.parse(r.stdout) as typeof report;
    } catch {
      report = undefined;
    }
    const errors = report ? report.errors : [`exit ${r.code}: ${r.stderr.slice(-500)}`];
    cycles.push({ device: i, start, end, ok: report !== undefined && errors.length === 0 && !report.uploadFailed, errors, address: report?.address ?? null });
    await new Promise((res) => setTimeout(res, 300));
  }
}

const okCyclesAfter = (i: number, t: number): Cycle[] => cycles.filter((c) => c.device === i && c.ok && c.start > t);
const eachDevice = <T>(fn: (i: number) => T): T[] => Array.from({ length: DEVICES }, (_, i) => fn(i));

/** Every device has `n` successful cycles that began after `t`. */
async function served(what: string, t: number, n = 1): Promise<void> {
  await until(what, () => (died.length > 0 ? assert.fail(`a process ended: ${died.join("\n")}`) : eachDevice((i) => okCyclesAfter(i, t).length >= n).every(Boolean)), 150_000);
}

/** The longest time between a device's last success that ended before `t` and its next success. */
function longestInterruption(t: number): number {
  return Math.max(
    ...eachDevice((i) => {
      const mine = cycles.filter((c) => c.device === i && c.ok);
      const last = mine.filter((c) => c.end <= t).at(-1);
      const next = mine.find((c) => c.end > t);
      assert.ok(last && next, `PC-${i} has a success before and after the event`);
      return next.end - last.end;
    }),
  );
}

/** Every file under `dir`, relative, sorted. */
function filesOf(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

before(async () => {
  root = tempDir("opencmg-ha-");
  for (const h of Object.keys(dirs) as HostName[]) dirs[h] = join(root, h);
  mkdirSync(join(root, "out"));
  lab = createLab(Object.keys(LAST), { nameserver: true, lastParts: LAST });
  const [gw1, gw2] = [addr("gw1"), addr("gw2")];
  dns = await startDns(lab, "net", lab.net.address, { [CMG]: [gw1, gw2], [SITE]: [addr("site")], [`cp1.${DOMAIN}`]: [addr("cp1")], [`cp2.${DOMAIN}`]: [addr("cp2")], [`gw1.${DOMAIN}`]: [gw1], [`gw2.${DOMAIN}`]: [gw2], [`dev.${DOMAIN}`]: [addr("dev")] }, "dev");
  pgc = await startPostgres({ netns: lab.hosts.site!.ns, listen: addr("site") });

  const pki = await makeTestPki({ serverName: CMG });
  const admin = join(root, "admin");
  mkdirSync(admin);
  const file = (name: string, text: string): string => (writeFileSync(join(admin, name), text), join(admin, name));
  caFile = file("root.pem", pki.root.certPem);
  await siteCli(["site", "init"]);
  await siteCli(["server", "add", SITE, "--site-server"]);
  mpRole = String((await siteCli<{ id: number }>(["role", "add", SITE, "management-point", "--allow-cmg-traffic", "--internal-url", `https://${SITE}:8443`, "--json"])).id);
  await siteCli(["cmg", "create", "cmg1", "--server-cert", file("server.pem", pki.server.certPem), "--server-key", file("server.key", pki.server.keyPem), "--instances", "2", "--trusted-root", caFile, "--no-crl-check", "--provider", "external", "--instance-addresses", `${gw1},${gw2}`, "--metrics-port", "0"]);
  await Promise.all(CPS.map(async (cp) => {
    await siteCli(["server", "add", `${cp}.${DOMAIN}`]);
    await siteCli(["role", "add", `${cp}.${DOMAIN}`, "cmg-connection-point", "--cmg", "cmg1"]);
  }));
  const bundle = join(admin, "bundle");
  await siteCli(["cmg", "bundle", "cmg1", "--out", bundle]);
  bulkToken = (await siteCli<{ token: string }>(["token", "create-bulk", "--lifetime", "60", "--json"])).token;

  await serve("site", ["--data", dirs.site, "--database", pgc.url, "site", "serve", "--listen", `${addr("site")}:8240`, "--tls-name", SITE, "--no-local-cmgs", "--join-listen", `${addr("site")}:8241`, "--join-name", SITE], /servers join at/);
  await serve("site", ["--data", dirs.site, "--database", pgc.url, "mp", "serve", "--server", SITE, "--listen", `${addr("site")}:8443`], /serving https/);

  // The gateway hosts: the bundle copied over, as an operator does (docs/operations.md).
  for (const gw of GWS) cpSync(bundle, join(dirs[gw], "bundle"), { recursive: true });
  await Promise.all(GWS.map((_, i) => startGateway(i)));
  await Promise.all(
    CPS.map(async (cp) => {
      const t = await siteCli<{ token: string; siteCaSha256: string }>(["--json", "server", "join-token", "create", `${cp}.${DOMAIN}`]);
      const joined = await opencmg(cp, ["--data", dirs[cp], "server", "join", "--site", `https://${SITE}:8241`, "--site-ca-sha256", t.siteCaSha256, "--token", "-"], t.token + "\n");
      assert.equal(joined.code, 0, joined.stderr);
      await startConnectionPoint(cp);
    }),
  );
  await allTunnelsUp("both connection points to reach both instances", 0, GWS.flatMap((gw) => CPS.map((cp) => [gw, cp] as const)));
  mark("the layout is up");

  await Promise.all(eachDevice(async (i) => {
    const r = await opencmg("dev", ["client", "install", "--client-dir", deviceDir(i), "--mp", `https://${CMG}/CCM_Proxy_ServerAuth/${mpRole}`, "--token", "-", "--ca", caFile, "--always-internet", "--name", `PC-${i}`], bulkToken + "\n");
    assert.equal(r.code, 0, r.stderr);
  }));
});

after(async () => {
  devicesRunning = false;
  await Promise.allSettled(loops);
  for (const p of procs) {
    p.stopping = true;
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  }
  await dns?.stop();
  await pgc?.stop();
  lab?.destroy();
  if (root && !process.env.OPENCMG_HA_KEEP) rmSync(root, { recursive: true, force: true });
});

it("serves devices through a gateway kill, a connection point kill and a database restart, losing no acknowledged upload", async () => {
  devicesRunning = true;
  for (let i = 0; i < DEVICES; i++) loops.push(deviceLoop(i));
  await served("every device to be served", 0);
  const firstAddresses = new Set(cycles.filter((c) => c.ok).map((c) => c.address));
  console.log(`ha: addresses serving the devices: ${[...firstAddresses].join(", ")}`);

  // A gateway host dies: every device's next cycle is served by the other instance.
  mark("devices served; killing gw1");
  const gwKill = Date.now();
  await killHost("gw1");
  const gwDead = Date.now();
  await served("every device to be served after gw1 died", gwDead);
  for (let i = 0; i < DEVICES; i++) {
    const next = cycles.find((c) => c.device === i && c.start > gwDead)!;
    assert.ok(next.ok, `PC-${i}'s first cycle after the gateway kill: ${next.errors.join("; ")}`);
    assert.equal(next.address, addr("gw2"));
  }
  const gatewayGap = longestInterruption(gwKill);
  // It comes back: both connection points dial it again.
  const gwBack = Date.now();
  await startGateway(0);
  await allTunnelsUp("both connection points to dial the restarted instance", gwBack, CPS.map((cp) => ["gw1", cp] as const));

  // A connection point host dies: the instances relay through the other one.
  mark("gw1 back; killing cp1");
  const cpKill = Date.now();
  await killHost("cp1");
  const cpDead = Date.now();
  await served("every device to be served after cp1 died", cpDead);
  for (let i = 0; i < DEVICES; i++) {
    const next = cycles.find((c) => c.device === i && c.start > cpDead)!;
    assert.ok(next.ok, `PC-${i}'s first cycle after the connection point kill: ${next.errors.join("; ")}`);
  }
  const cpGap = longestInterruption(cpKill);
  const cpBack = Date.now();
  await startConnectionPoint("cp1");
  await allTunnelsUp("the restarted connection point to reach both instances", cpBack, GWS.map((gw) => [gw, "cp1"] as const));

  // The database stops: uploads fail and stay queued on the devices. It starts again: everything reconnects.
  mark("cp1 back; stopping PostgreSQL");
  const dbStop = Date.now();
  await pgc!.shutdown();
  const dbDown = Date.now();
  await until("every device to cycle while the database is down", () => eachDevice((i) => cycles.some((c) => c.device === i && c.start > dbDown)).every(Boolean), 150_000);
  const duringOutage = cycles.filter((c) => c.start > dbDown);
  assert.ok(duringOutage.every((c) => !c.ok), "no cycle succeeds without the database");
  const unacked = eachDevice((i) => [...queueOf(i).values()]).flat();
  assert.ok(unacked.length >= DEVICES, `the devices keep what was not acknowledged: ${unacked.length} queued`);
  mark("PostgreSQL starting again");
  const dbStart = Date.now();
  await pgc!.startAgain();
  await served("every device to be served after the database restart", dbStart);
  const dbGap = longestInterruption(dbStop);
  mark("devices served after the database restart");
  // Every part reconnected by itself: the same processes serve, and the site's connection point reports land again.
  assert.deepEqual(died, [], "no process ended by itself");
  await allTunnelsUp("connection point reports to be stored after the database restart", dbStart, []);

  devicesRunning = false;
  await Promise.all(loops);
  console.log(`ha: longest interruption ${(gatewayGap / 1000).toFixed(1)} s (gateway kill), ${(cpGap / 1000).toFixed(1)} s (connection point kill), ${(dbGap / 1000).toFixed(1)} s (database restart)`);

  // What the devices kept while the database was down went out later; nothing acknowledged is missing, nothing is stored twice.
  for (const t of unacked) assert.ok(ackedTexts.has(t), `${t}, queued during the outage, was sent again and acknowledged`);
  const stored = pgc!.psql("select text from status_messages where source = 'client' and message_id = 10002").split("\n").filter((l) => l.startsWith("ha PC-"));
  const counts = new Map<string, number>();
  for (const s of stored) counts.set(s, (counts.get(s) ?? 0) + 1);
  const missing = [...ackedTexts].filter((t) => !counts.has(t));
  assert.deepEqual(missing, [], "every acknowledged message is in the database");
  assert.deepEqual([...counts].filter(([, n]) => n > 1), [], "no message is stored twice");
  console.log(`ha: ${queuedTexts.size} messages queued, ${ackedTexts.size} acknowledged, ${stored.length} stored; ${cycles.length} cycles, ${cycles.filter((c) => !c.ok).length} failed`);
});

it("keeps the site's secrets and database on the site host: the connection point and gateway hosts hold neither", async () => {
  for (const p of [...procs]) {
    p.stopping = true;
    p.child.kill("SIGTERM");
    await p.exit;
  }
  for (const h of ["site", ...CPS, ...GWS] as HostName[]) {
    const files = filesOf(dirs[h]);
    console.log(`ha: ${h} data folder:\n  ${files.join("\n  ")}`);
    if (h === "site") {
      assert.ok(files.includes("site.key"), "the site key is on the site host");
      continue;
    }
    assert.ok(!files.some((f) => /(^|\/)site\.key$/.test(f)), `${h} holds no site.key: ${files.join(", ")}`);
    assert.ok(!files.some((f) => /\.(db|db-wal|db-shm|sqlite)$/.test(f)), `${h} holds no database: ${files.join(", ")}`);
  }
  assert.deepEqual(filesOf(dirs.cp1).filter((f) => !f.startsWith("logs/")), ["host.key", "host.pem", "join.json", "site-ca.pem"]);
});
