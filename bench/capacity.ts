/**
 * Capacity benchmark: what one host's CMG holds. One gateway instance (`opencmg gateway serve
 * --workers N`, N the host's cores unless given; `--workers 0` runs the instance in one bench
 * process instead, for profiling), one connection point and a management point backend, each in
 * its own process; load generators in child processes (bench/capacity/devices.ts), each device its
 * own client certificate from the test PKI, spread over many loopback source addresses. IDLE idle
 * authenticated devices are held while ACTIVE active devices run the mix
 * (location, policy, status upload; time compressed so they make `--rate` requests/s together);
 * then the instance restarts and the devices come back (the reconnect storm). The same idle +
 * active load then runs against nginx in mutual TLS (bench/gateway.ts row C's server) as the
 * reference. Every loop is bounded; everything is on loopback.
 *
 *   npx tsx bench/capacity.ts [--idle 50000] [--active 10000] [--rate 500] [--measure-s 60]
 *                             [--per-gen 5000] [--workers N] [--storm-s 180] [--backoff-cap-s 15]
 *                             [--idle-ping-s S] [--no-nginx]
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "undici";
import { ROLES, startCrlServer } from "../test/helpers/cmg-harness.ts";
import { makeTestPki } from "../test/helpers/pki-fixtures.ts";
import { freePort } from "../test/helpers/ports.ts";
import { siteSigned } from "../test/helpers/settings-signer.ts";
import { GATE_CLOSURES } from "../src/gateway/admission.ts";
import { issueCert } from "../src/pki/issue.ts";
import { arg, Child, cpuSeconds, waitUntil } from "./lib/child.ts";
import { Part } from "./gateway/harness.ts";
import { SERVERNAME } from "./gateway/load.ts";
import { startCapacityNginx } from "./gateway/nginx.ts";
import type { Setup } from "./gateway/parts.ts";
import { KINDS, PERIOD_S, type DeviceTarget, type GeneratorJob, type GeneratorReport, type Kind } from "./capacity/mix.ts";

const DEVICES = join(import.meta.dirname, "capacity", "devices.ts");
const REPO = join(import.meta.dirname, "..");
/** Open files a process may hold here; each generator and gateway process keeps this many below it. */
const FD_MARGIN = 1000;
/** Devices per loopback source address (well under the ~28,000 ephemeral ports of one address). */
const PER_ADDRESS = 2000;

const flag = (name: string): boolean => process.argv.includes(`--${name}`);

/** The soft limit on open files this process (and so its children) may hold. */
function openFileLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync("/proc/self/limits", "utf8"));
  return !m || m[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(m[1]);
}

/** Resident set of a process and its live descendants (a gateway with workers), MiB. */
function treeRssMiB(pid: number): number {
  let kb = 0;
  try {
    kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      for (const k of kids ? kids.split(" ") : []) kb += treeRssMiB(Number(k)) * 1024;
    }
  } catch {
    /* gone meanwhile */
  }
  return kb / 1024;
}

function treeCpu(pid: number): number {
  let s = 0;
  try {
    s = cpuSeconds(pid);
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      for (const k of kids ? kids.split(" ") : []) s += treeCpu(Number(k));
    }
  } catch {
    /* gone meanwhile */
  }
  return s;
}

/** CPU time of the whole machine from /proc/stat (clock ticks): busy and total. */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, x) => a + x, 0);
  // idle and iowait
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "-");

/** The gateway instance under test: in a bench part process, or `opencmg gateway serve --workers N`. */
interface Gateway {
  pid: number;
  stop(): Promise<void>;
}

/** Generators: the parent's side. */
class Generator {
  private constructor(readonly child: Child, readonly job: GeneratorJob) {}

  static async start(job: GeneratorJob): Promise<Generator> {
    const child = Child.node(DEVICES, [JSON.stringify(job)], { name: `devices ${job.id}`, stdin: "ignore", stdout: "inherit", ipc: true });
    // Issuing thousands of certificates takes a while on a busy machine.
    await child.message("ready", 3_600_000);
    return new Generator(child, job);
  }

  async ask<T>(m: object, reply: string, timeoutMs = 600_000): Promise<T> {
    const p = this.child.message<{ type: string } & T>(reply, timeoutMs);
    this.child.send(m);
    return p;
  }
}

interface LoadFigures {
  lat: Record<Kind, number[]>;
  failed: Record<Kind, number>;
  why: Record<string, number>;
  connected: number;
  drops: number;
  skipped: number;
  handshakes: number;
  resumed: number;
  back: number[];
  tries: number;
  triesWhy: Record<string, number>;
  /** The worst generator's event-loop delay, ms. */
  lagP99Ms: number;
  lagMaxMs: number;
}

async function reportAll(gens: Generator[]): Promise<LoadFigures> {
  const rs = await Promise.all(gens.map((g) => g.ask<GeneratorReport>({ type: "report" }, "report")));
  const out: LoadFigures = { lat: { location: [], policy: [], status: [] }, failed: { location: 0, policy: 0, status: 0 }, why: {}, connected: 0, drops: 0, skipped: 0, handshakes: 0, resumed: 0, back: [], tries: 0, triesWhy: {}, lagP99Ms: 0, lagMaxMs: 0 };
  for (const r of rs) {
    for (const k of KINDS) {
      out.lat[k].push(...r.lat[k]);
      out.failed[k] += r.failed[k];
    }
    for (const [w, n] of Object.entries(r.why)) out.why[w] = (out.why[w] ?? 0) + n;
    out.connected += r.connected;
    out.drops += r.drops;
    out.skipped += r.skipped;
    out.handshakes += r.handshakes;
    out.resumed += r.resumed;
    out.back.push(...r.back);
    out.tries += r.tries;
    for (const [w, n] of Object.entries(r.triesWhy)) out.triesWhy[w] = (out.triesWhy[w] ?? 0) + n;
    // The worst generator's: its devices were the latest to answer.
    out.lagP99Ms = Math.max(out.lagP99Ms, r.lagP99Ms);
    out.lagMaxMs = Math.max(out.lagMaxMs, r.lagMaxMs);
  }
  for (const k of KINDS) out.lat[k].sort((a, b) => a - b);
  out.back.sort((a, b) => a - b);
  return out;
}

/** Per request kind: count, failures, p50, p99; and the p99 over every kind. */
function latencyTable(f: LoadFigures, seconds: number): { lines: string[]; p99: number } {
  const lines = [`kind        answered  failed   req/s    p50 ms    p99 ms`];
  for (const k of KINDS) {
    const l = f.lat[k];
    lines.push(`${k.padEnd(10)} ${String(l.length).padStart(9)} ${String(f.failed[k]).padStart(7)} ${(l.length / seconds).toFixed(1).padStart(7)} ${ms(quantile(l, 0.5)).padStart(9)} ${ms(quantile(l, 0.99)).padStart(9)}`);
  }
  const all = KINDS.flatMap((k) => f.lat[k]).sort((a, b) => a - b);
  const failed = KINDS.reduce((a, k) => a + f.failed[k], 0);
  lines.push(`${"all".padEnd(10)} ${String(all.length).padStart(9)} ${String(failed).padStart(7)} ${(all.length / seconds).toFixed(1).padStart(7)} ${ms(quantile(all, 0.5)).padStart(9)} ${ms(quantile(all, 0.99)).padStart(9)}`);
  if (Object.keys(f.why).length > 0) lines.push(`failures: ${Object.entries(f.why).map(([w, n]) => `${w} x${n}`).join(", ")}`);
  // The worst kind's p99: the goal is per kind.
  return { lines, p99: Math.max(...KINDS.map((k) => quantile(f.lat[k], 0.99)).filter(Number.isFinite)) };
}

/** Connects every device to `target`, runs the mix for `measureS`, and reports latencies, RSS and CPU of `procs`. */
async function steady(
  name: string,
  gens: Generator[],
  target: DeviceTarget,
  procs: Record<string, () => number>,
  o: { measureS: number; devices: number },
): Promise<{ lines: string[]; p99: number; rssMiB: Record<string, number> }> {
  const lines: string[] = [];
  process.stderr.write(`${name}: connecting ${o.devices} devices...\n`);
  const t0 = performance.now();
  const conn = await Promise.all(gens.map((g) => g.ask<{ failed: number; why: Record<string, number> }>({ type: "target", target }, "connected", 3_600_000)));
  const failed = conn.reduce((a, c) => a + c.failed, 0);
  lines.push(`${name}: ${o.devices - failed}/${o.devices} devices authenticated at the first try in ${((performance.now() - t0) / 1000).toFixed(1)} s${failed ? ` (${failed} came back later: ${JSON.stringify(Object.assign({}, ...conn.map((c) => c.why)))})` : ""}`);
  // Every device connected (the ones that failed at first come back with their backoff), bounded.
  const deadline = Date.now() + 300_000;
  let f = await reportAll(gens);
  while (f.connected < o.devices && Date.now() < deadline) {
    await sleep(1000);
    f = await reportAll(gens);
  }
  await sleep(3000); // the mix under way on every active device
  for (const g of gens) g.child.send({ type: "reset" });
  const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, treeCpu(pid())]));
  const peak: Record<string, number> = Object.fromEntries(Object.keys(procs).map((k) => [k, 0]));
  const t1 = performance.now();
  process.stderr.write(`${name}: measuring ${o.measureS} s with ${f.connected} devices connected...\n`);
  while (performance.now() - t1 < o.measureS * 1000) {
    for (const [k, pid] of Object.entries(procs)) peak[k] = Math.max(peak[k]!, treeRssMiB(pid()));
    await sleep(1000);
  }
  const seconds = (performance.now() - t1) / 1000;
  const cpu = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, (treeCpu(pid()) - cpu0[k]!) / seconds]));
  f = await reportAll(gens);
  const t = latencyTable(f, seconds);
  lines.push(`${name}: ${f.connected}/${o.devices} devices connected at the end, ${f.drops} connection(s) dropped while measuring (${seconds.toFixed(0)} s)`, ...t.lines);
  lines.push(`process          RSS peak MiB   CPU % of one core`);
  for (const k of Object.keys(procs)) lines.push(`${k.padEnd(16)} ${peak[k]!.toFixed(0).padStart(12)} ${(cpu[k]! * 100).toFixed(0).padStart(19)}`);
  return { lines, p99: t.p99, rssMiB: peak };
}

const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

/** One request through `origin` with the test client certificate: true when answered 200. */
async function probe(origin: string, pki: { root: string; cert: string; key: string }): Promise<boolean> {
  const c = new Client(origin, { connect: { ca: pki.root, cert: pki.cert, key: pki.key, servername: SERVERNAME } });
  try {
    const r = await c.request({ path: `/CCM_Proxy_MutualAuth/${ROLES.mp}/SMS_MP/.sms_aut?MPLIST`, method: "GET", signal: AbortSignal.timeout(5000) });
    await r.body.dump();
    return r.statusCode === 200;
  } catch {
    return false;
  } finally {
    await c.destroy().catch(() => {});
  }
}

/**
 * The storm as the instance saw it, every 5 s from its /healthz and /metrics (every worker added
 * up): TLS handshakes in progress, connections waiting for a handshake place and the limit;
 * handshakes done and failed, requests relayed, devices back, connections the gate closed (its
 * place taken / the waiting queue full / waited past the timeout), and refusals by reason.
 */
class GateTimeline {
  private readonly rows: string[] = [];
  private last = -Infinity;

  constructor(
    private readonly base: string,
    private readonly t0: number,
  ) {}

  async sample(back: number): Promise<void> {
    const t = (Date.now() - this.t0) / 1000;
    if (t - this.last < 5) return;
    this.last = t;
    try {
      const signal = AbortSignal.timeout(2000);
      const h = (await (await fetch(`${this.base}/healthz`, { signal })).json()) as { handshakes?: { client?: { pending: number; waiting: number; limit: number } } };
      const m = await (await fetch(`${this.base}/metrics`, { signal })).text();
      const sum = (name: string, label?: RegExp): number => {
        let n = 0;
        for (const line of m.split("\n")) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) if (!label || label.test(line)) n += Number(line.slice(line.lastIndexOf(" ") + 1)) || 0;
        return n;
      };
      const refusals = [...m.matchAll(/^opencmg_gateway_auth_refusals_total\{[^}]*reason="([^"]+)"[^}]*\} (\d+)/gm)].reduce<Record<string, number>>((a, x) => ({ ...a, [x[1]!]: (a[x[1]!] ?? 0) + Number(x[2]) }), {});
      const c = h.handshakes?.client;
      this.rows.push(
        `${t.toFixed(0).padStart(4)} s  ${String(c?.pending ?? "-").padStart(7)} ${String(c?.waiting ?? "-").padStart(7)} ${String(c?.limit ?? "-").padStart(5)}  ` +
          `${String(sum("opencmg_gateway_client_connections_total")).padStart(9)} ${String(sum("opencmg_gateway_tls_handshake_failures_total", /listener="client"/)).padStart(7)} ` +
          `${String(sum("opencmg_gateway_requests_total", /result="ok"/)).padStart(8)} ${String(back).padStart(7)}  ` +
          `${GATE_CLOSURES.map((w) => sum("opencmg_gateway_handshake_gate_closed_total", new RegExp(`listener="client".*why="${w}"|why="${w}".*listener="client"`))).join("/").padStart(16)}  ` +
          `${Object.entries(refusals).map(([k, v]) => `${k} ${v}`).join(", ") || "-"}`,
      );
    } catch (e) {
      this.rows.push(`${t.toFixed(0).padStart(4)} s  (instance not answering: ${(e as Error).message})`);
    }
  }

  lines(): string[] {
    return ["the instance during the storm (every worker added up; counters since the new instance started):", "  time  pending waiting limit  TLS done  failed  relayed    back  gate closed r/q/t  refusals", ...this.rows];
  }
}

async function main(): Promise<void> {
  const idle = Number(arg("idle", "50000"));
  const active = Number(arg("active", "10000"));
  const rate = Number(arg("rate", "500"));
  const measureS = Number(arg("measure-s", "60"));
  const perGen = Number(arg("per-gen", "5000"));
  const workersArg = Number(arg("workers", String(cpus().length)));
  if (!Number.isInteger(workersArg) || workersArg < 0) throw new Error("--workers: a number of worker processes (0: the instance in one bench process)");
  const workers = workersArg > 0 ? String(workersArg) : "";
  const stormS = Number(arg("storm-s", "180"));
  const backoffCapS = Number(arg("backoff-cap-s", "15"));
  const withNginx = !flag("no-nginx");
  const devices = idle + active;
  // The instance in a bench process raises its idle timeout (as bench/gateway.ts does); `gateway
  // serve` runs with the product's (120 s), so idle devices ping under it.
  const idlePingS = Number(arg("idle-ping-s", workers ? "90" : "0"));
  const fdLimit = openFileLimit();
  const gwProcs = workers ? Number(workers) : 1;
  if (Math.ceil(devices / gwProcs) > fdLimit - FD_MARGIN) {
    throw new Error(`${devices} devices over ${gwProcs} gateway process(es) is over the ${fdLimit} open files a process may hold here: pass --workers ${Math.ceil(devices / (fdLimit - FD_MARGIN))} (gateway serve --workers) or fewer devices`);
  }
  if (perGen > fdLimit - FD_MARGIN) throw new Error(`--per-gen ${perGen} is over the ${fdLimit} open files a process may hold here`);
  const realPerDevice = KINDS.reduce((a, k) => a + 1 / PERIOD_S[k], 0);
  const compress = Math.max(1, rate / (active * realPerDevice));

  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-capacity-"));
  const stops: (() => Promise<void>)[] = [];
  try {
    const crl = await startCrlServer();
    stops.push(() => crl.close());
    const pki = await makeTestPki({ crlBaseUrl: crl.base });
    crl.files = pki.crlFiles;
    const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: SERVERNAME, dnsNames: [SERVERNAME], ipAddresses: ["127.0.0.1"], usage: "server" });
    const backend = await Part.start("backend");
    stops.push(() => backend.part.stop());
    const backendUrl = `http://127.0.0.1:${backend.port}`;
    const signed = siteSigned(
      { revision: 1, trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: true, urlMap: { [ROLES.mp]: { kind: "mp", allowCmgTraffic: true } } },
      pki.tunnelClient,
    );
    const setup: Setup = {
      dir,
      pki: { server: pki.server, siteCa: pki.siteCa, tunnelServer, tunnelClient: pki.tunnelClient },
      ...signed,
      backends: { [ROLES.mp]: backendUrl },
      gateway: { clientPort: await freePort(), tunnelPort: await freePort(), idleTimeoutMs: 60 * 60_000 },
      floor: { cert: "", key: "", clientCa: [], clientPort: 0, tunnelPort: 0, backendUrl, tunnels: 0, h1: { clientPort: 0, tunnelPort: 0, connections: 0 } },
    };
    const setupFile = join(dir, "setup.json");
    writeFileSync(setupFile, JSON.stringify(setup), { mode: 0o600 });
    const probeTls = { root: pki.root.certPem, cert: pki.client.certPem, key: pki.client.keyPem };
    const gwOrigin = `https://127.0.0.1:${setup.gateway.clientPort}`;
    const metricsPort = await freePort();

    const startGateway = async (): Promise<Gateway> => {
      if (!workers) {
        const p = (await Part.start("gateway", setupFile)).part;
        return { pid: p.pid, stop: () => p.stop() };
      }
      // The product's own command, with --workers passed through (a start-up file as `cmg bundle` writes it).
      const files: Record<string, string> = {
        "server.pem": pki.server.certPem,
        "server.key": pki.server.keyPem,
        "tunnel.pem": tunnelServer.certPem,
        "tunnel.key": tunnelServer.keyPem,
        "site-ca.pem": pki.siteCa.certPem,
      };
      for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text, { mode: 0o600 });
      const startup = {
        version: 1,
        name: "cmg1",
        index: 0,
        serverCertFile: "server.pem",
        serverKeyFile: "server.key",
        tunnelCertFile: "tunnel.pem",
        tunnelKeyFile: "tunnel.key",
        siteCaFile: "site-ca.pem",
        client: { host: "127.0.0.1", port: setup.gateway.clientPort },
        tunnel: { host: "127.0.0.1", port: setup.gateway.tunnelPort },
        // The instance's /healthz and /metrics: the storm's timeline reads the handshake gate from them.
        metrics: { host: "127.0.0.1", port: metricsPort },
        trust: signed.trust,
      };
      writeFileSync(join(dir, "startup.json"), JSON.stringify(startup));
      const c = Child.start(process.execPath, [join(REPO, "bin", "opencmg.mjs"), "--data", join(dir, "gw-data"), "gateway", "serve", "--config", join(dir, "startup.json"), "--workers", workers], {
        name: "gateway serve",
        stdout: "ignore",
        stderr: "pipe",
      });
      await c.waitForLine(/listening/, { stream: "stderr", timeoutMs: 60_000 });
      return { pid: c.pid, stop: () => c.stop({ signal: "SIGTERM", graceMs: 30_000 }) };
    };

    let gateway = await startGateway();
    stops.push(() => gateway.stop());
    const cp = (await Part.start("cp", setupFile, "")).part;
    stops.push(() => cp.stop());
    await waitUntil("the first request through the gateway", () => probe(gwOrigin, probeTls), 60_000);

    // Generators: `perGen` devices each, the active ones spread evenly, each on its own source addresses.
    const gens: Generator[] = [];
    stops.push(async () => void (await Promise.all(gens.map((g) => g.child.stop({ ask: () => g.child.send({ type: "exit" }) })))));
    const nGen = Math.max(1, Math.ceil(devices / perGen));
    process.stderr.write(`issuing ${devices} device certificates in ${nGen} generator process(es)...\n`);
    const t0 = performance.now();
    let first = 0;
    const jobs: GeneratorJob[] = [];
    for (let i = 0; i < nGen; i++) {
      const a = Math.floor(active / nGen) + (i < active % nGen ? 1 : 0);
      const d = Math.floor(idle / nGen) + (i < idle % nGen ? 1 : 0);
      const addresses = Array.from({ length: Math.max(1, Math.ceil((a + d) / PER_ADDRESS)) }, (_, j) => `127.${10 + i}.${j}.1`);
      jobs.push({
        id: i,
        first,
        idle: d,
        active: a,
        addresses,
        issuer: pki.intermediate,
        crlUrl: pki.crlUrls.intermediate!,
        ca: pki.root.certPem,
        compress,
        idlePingS,
        backoffCapS,
        requestTimeoutMs: 30_000,
      });
      first += a + d;
    }
    gens.push(...(await Promise.all(jobs.map((j) => Generator.start(j)))));
    const issued = `${devices} device certificates issued in ${((performance.now() - t0) / 1000).toFixed(0)} s`;

    const out: string[] = [
      `Capacity benchmark: ${idle} idle + ${active} active devices (${nGen} generator process(es), ${devices} certificates), ` +
        `mix time-compressed ${compress.toFixed(0)}x (location every ${(PERIOD_S.location / compress).toFixed(0)} s, policy every ${(PERIOD_S.policy / compress).toFixed(1)} s, ` +
        `status every ${(PERIOD_S.status / compress).toFixed(1)} s per active device: ${(active * realPerDevice * compress).toFixed(0)} req/s), measured ${measureS} s; ` +
        `load average at the start ${loadavg().map((x) => x.toFixed(1)).join(" ")} on ${cpus().length} CPUs; gateway ${workers ? `\`gateway serve --workers ${workers}\`` : "instance in one process (no --workers)"}, open-file limit ${fdLimit}`,
      issued,
    ];

    // 1. The product: idle + active held and measured.
    const gwTarget: DeviceTarget = { origin: gwOrigin, prefix: `/CCM_Proxy_MutualAuth/${ROLES.mp}`, servername: SERVERNAME };
    const gwProcs = { gateway: () => gateway.pid, "connection point": () => cp.pid, backend: () => backend.part.pid, ...Object.fromEntries(gens.map((g, i) => [`generator ${i}`, () => g.child.pid])) };
    const gw = await steady("gateway", gens, gwTarget, gwProcs, { measureS, devices });
    out.push("", ...gw.lines);
    console.error(gw.lines.join("\n"));

    // 2. The storm: the instance restarts; every device comes back on its own.
    process.stderr.write(`gateway: restarting the instance...\n`);
    for (const g of gens) g.child.send({ type: "reset" });
    const stormCpu0 = Object.fromEntries(Object.entries(gwProcs).map(([k, pid]) => [k, k === "gateway" ? 0 : treeCpu(pid())]));
    const machine0 = machineCpu();
    const stormT0 = Date.now();
    for (const g of gens) g.child.send({ type: "storm", t0: stormT0 });
    await gateway.stop();
    const down = (Date.now() - stormT0) / 1000;
    gateway = await startGateway();
    const up = (Date.now() - stormT0) / 1000;
    let f = await reportAll(gens);
    let tunnelAt = NaN;
    const timeline = workers ? new GateTimeline(`http://127.0.0.1:${metricsPort}`, stormT0) : null;
    while (f.back.length < devices && Date.now() - stormT0 < stormS * 1000) {
      if (Number.isNaN(tunnelAt) && (await probe(gwOrigin, probeTls))) tunnelAt = (Date.now() - stormT0) / 1000;
      await timeline?.sample(f.back.length);
      await sleep(1000);
      f = await reportAll(gens);
    }
    const stormSeconds = (Date.now() - stormT0) / 1000;
    // What limited the storm: each process's CPU over it (the new gateway's whole life), and the machine's.
    const stormCpu = Object.entries(gwProcs).map(([k, pid]) => `${k} ${(((treeCpu(pid()) - stormCpu0[k]!) / stormSeconds) * 100).toFixed(0)}%`);
    const machine1 = machineCpu();
    const busy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
    const r99s = f.back.length >= Math.ceil(devices * 0.99) ? f.back[Math.ceil(devices * 0.99) - 1]! : NaN;
    const r100 = f.back.length >= devices ? f.back[devices - 1]! : NaN;
    const storm = latencyTable(f, stormSeconds);
    const stormLines = [
      `storm: instance stopped in ${down.toFixed(1)} s, new one listening at ${up.toFixed(1)} s, first test request through it at ${ms(tunnelAt)} s, first device back at ${ms(f.back[0] ?? NaN)} s; ` +
        `${f.back.length}/${devices} devices back within ${stormSeconds.toFixed(0)} s: 99% at ${ms(r99s)} s, 100% at ${ms(r100)} s (device backoff: full jitter, 1 s doubling to ${backoffCapS} s); ` +
        `${f.handshakes} TLS connections, ${f.resumed} of them resumed a session`,
      `CPU over the storm, % of one core: ${stormCpu.join(", ")}; the machine's ${cpus().length} CPUs ${(busy * 100).toFixed(0)}% busy (every process on it)`,
      `devices' tries to come back: ${f.tries} (failed: ${Object.entries(f.triesWhy).map(([w, n]) => `${w} x${n}`).join(", ") || "none"}); ` +
        `the generators' event loops over the storm (worst generator): p99 delay ${f.lagP99Ms.toFixed(0)} ms, max ${f.lagMaxMs.toFixed(0)} ms (how late the devices' half of each handshake came)`,
      `the active devices' requests from the restart on (${stormSeconds.toFixed(0)} s; ${f.skipped} not sent while their device was reconnecting):`,
      ...storm.lines,
    ];
    if (timeline) stormLines.push("", ...timeline.lines());
    out.push("", ...stormLines);
    console.error(stormLines.join("\n"));
    await Promise.all(gens.map((g) => g.ask({ type: "close" }, "closed")));

    // 3. The reference: nginx in mutual TLS (row C's server), the same devices and mix.
    let ng: { p99: number } | null = null;
    if (withNginx) {
      const nginx = await startCapacityNginx(backend.port!, pki, devices, fdLimit - FD_MARGIN);
      stops.push(() => nginx.stop());
      const ngTarget: DeviceTarget = { origin: `https://127.0.0.1:${nginx.tlsPort}`, prefix: "", servername: SERVERNAME };
      const n = await steady("nginx", gens, ngTarget, { nginx: () => nginx.pid, backend: () => backend.part.pid, ...Object.fromEntries(gens.map((g, i) => [`generator ${i}`, () => g.child.pid])) }, { measureS, devices });
      ng = n;
      out.push("", ...n.lines);
      console.error(n.lines.join("\n"));
      await Promise.all(gens.map((g) => g.ask({ type: "close" }, "closed")));
    }

    const gwRss = gw.rssMiB.gateway!;
    const goal = (ok: boolean): string => (ok ? "met" : "MISSED");
    out.push(
      "",
      `goals: p99 < 100 ms every kind: ${ms(gw.p99)} ms ${goal(gw.p99 < 100)}${ng ? ` (nginx ${ms(ng.p99)} ms)` : ""}; gateway RSS < 4 GiB: ${gwRss.toFixed(0)} MiB ${goal(gwRss < 4096)}; ` +
        `99% back <= 60 s: ${ms(r99s)} s ${goal(r99s <= 60)}; 100% back <= 120 s: ${ms(r100)} s ${goal(r100 <= 120)}; storm p99 < 1 s: ${ms(storm.p99)} ms ${goal(storm.p99 < 1000)}`,
      `capacity: held ${idle} idle + ${active} active, p99 ${ms(gw.p99)} ms, reconnect-99 ${ms(r99s)} s, reconnect-100 ${ms(r100)} s`,
    );
    await stopAll(stops);
    console.log(out.join("\n"));
  } finally {
    await stopAll(stops);
    // OPENCMG_BENCH_KEEP=1 keeps the parts' data folders (their CMTrace logs) for a look afterwards.
    if (process.env.OPENCMG_BENCH_KEEP === "1") console.error(`kept ${dir} (the parts' logs are under it)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the stop functions last-started first, each once, whatever the others do. */
async function stopAll(stops: (() => Promise<void>)[]): Promise<void> {
  for (const stop of stops.splice(0).reverse()) await stop().catch((e: unknown) => console.error(e));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
