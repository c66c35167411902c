/**
 * Gateway data-path benchmark (issue 5): one run, one backend, several paths to it.
 *
 *   A  client -> backend (plain HTTP, loopback)
 *   B  client -> nginx (Debian package, one hop, upstream keep-alive) -> backend
 *   C  like B with the client side in mutual TLS (the TLS cost alone, for reading D fairly)
 *   D  client --mTLS--> gateway instance --tunnel--> connection point -> backend
 *   E  like D, with the connection point's tunnel dialled through a real Squid (Egress#connect)
 *   F  the floor: D's topology in a few lines of plain Node (bench/floor-relay.ts), none of the
 *      product's checks; D - F is what the product itself costs
 *
 * Every part runs in its own process, as in production: the backend, the gateway instance, the
 * connection point, and the load generator (this same file in `backend`, `gateway`, `cp`, `load`
 * and `idle` modes). For C, D and E the load generator presents the test client certificate.
 * The idle-connection figures are the RSS of the gateway instance's process alone.
 *
 *   npx tsx bench/gateway.ts [--n 10000] [--conc 64] [--rate 100] [--lat-n 400] [--mb 256]
 *                            [--idle 1000,5000,15000] [--only A,B,C,D,E,F]
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Pool } from "undici";
import { ROLES, startBackend, startCrlServer } from "../test/helpers/cmg-harness.ts";
import { makeTestPki, type TestPki } from "../test/helpers/pki-fixtures.ts";
import { startSquid, type TestSquid } from "../test/helpers/squid.ts";
import { freePort } from "../test/helpers/ports.ts";
import { issueCert, type IssuedCert } from "../src/pki/issue.ts";
import { Egress } from "../src/egress/egress.ts";
import { LogSet } from "../src/logs/cmtrace.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../src/gateway/instance.ts";
import { connectionPointLogs, startConnectionPoint } from "../src/connection-point/connection-point.ts";
import type { CmgSettings } from "../src/wire/tunnel/protocol.ts";
import { startFloorConnectionPoint, startFloorGateway, type FloorSetup } from "./floor-relay.ts";

const SERVERNAME = "cmg.opencmg.test";
const SMALL = 100;

/** What a child needs to reach one target. */
interface Target {
  origin: string;
  /** Path prefix in front of "/bytes/<n>". */
  prefix: string;
  tls?: { ca: string; cert: string; key: string };
}

interface LoadJob {
  kind: "rps" | "latency" | "download";
  target: Target;
  n: number;
  conc: number;
  rate: number;
  bytes: number;
}

interface LoadResult {
  rps?: number;
  /** CPU time of the load generator per request (rps runs). */
  cpuUs?: number;
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  mbPerS?: number;
}

/** Everything the gateway and connection point children need, written once by the parent. */
interface Setup {
  dir: string;
  pki: { server: IssuedCert; siteCa: IssuedCert; tunnelServer: IssuedCert; tunnelClient: IssuedCert };
  settings: CmgSettings;
  backends: Record<string, string>;
  gateway: { clientPort: number; tunnelPort: number; idleTimeoutMs: number };
  floor: FloorSetup;
}

type ChildMessage = { type: "ready"; port?: number } | { type: "rss"; rssMiB: number } | { type: "status"; ready: boolean };

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const gcNow: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function rssMiB(): number {
  gcNow();
  gcNow();
  return process.memoryUsage().rss / 1024 / 1024;
}

// ---------------------------------------------------------------- load generator (child side)

/** Requests sent before the clock starts in an rps run. */
const warmCount = (n: number): number => Math.min(2000, n);

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (CLK_TCK = 100)
}

function pool(t: Target, connections: number): Pool {
  return new Pool(t.origin, {
    connections,
    pipelining: 1,
    ...(t.tls ? { connect: { ca: t.tls.ca, cert: t.tls.cert, key: t.tls.key, servername: SERVERNAME } } : {}),
  });
}

async function get(p: Pool, path: string): Promise<number> {
  const r = await p.request({ path, method: "GET" });
  let n = 0;
  for await (const c of r.body) n += (c as Buffer).length;
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
  return n;
}

async function runLoad(job: LoadJob): Promise<LoadResult> {
  const path = `${job.target.prefix}/bytes/${job.kind === "download" ? job.bytes : SMALL}`;
  if (job.kind === "download") {
    const p = pool(job.target, 1);
    await get(p, `${job.target.prefix}/bytes/${SMALL}`); // connection up before the clock starts
    process.stdout.write("warm\n");
    await new Promise((r) => process.stdin.once("data", r));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await get(p, path);
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await p.close();
    if (n !== job.bytes) throw new Error(`short download ${n}/${job.bytes}`);
    return { mbPerS: n / 1e6 / s, cpuUs: (cpu.user + cpu.system) / (n / 1e6), errors: 0 };
  }
  if (job.kind === "rps") {
    const p = pool(job.target, job.conc);
    let errors = 0;
    const loop = async (count: { left: number }): Promise<void> => {
      while (count.left-- > 0) await get(p, path).catch(() => void errors++);
    };
    const warm = { left: warmCount(job.n) };
    await Promise.all(Array.from({ length: job.conc }, () => loop(warm)));
    // Warm (connections open, code compiled): the parent reads the other processes' CPU, then says go.
    process.stdout.write("warm\n");
    await new Promise((r) => process.stdin.once("data", r));
    const cpu0 = process.cpuUsage();
    const count = { left: job.n };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: job.conc }, () => loop(count)));
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await p.close();
    return { rps: job.n / s, cpuUs: (cpu.user + cpu.system) / job.n, errors };
  }
  // Fixed rate, open loop: request i leaves at t0 + i/rate whatever happened to the others.
  const p = pool(job.target, 16);
  for (let i = 0; i < 100; i++) await get(p, path);
  const lat: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < job.n; i++) {
    const due = t0 + (i * 1000) / job.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const s = performance.now();
    all.push(get(p, path).then(() => void lat.push(performance.now() - s), () => void errors++));
  }
  await Promise.all(all);
  await p.close();
  lat.sort((a, b) => a - b);
  const q = (x: number): number => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] ?? NaN;
  return { p50Ms: q(0.5), p99Ms: q(0.99), errors };
}

/** Opens `n` authenticated client connections (TLS with client cert + one request each) and holds them. */
async function runIdle(t: Target, n: number): Promise<void> {
  const url = new URL(t.origin);
  const sockets: TLSSocket[] = [];
  let failed = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: t.tls!.ca, cert: t.tls!.cert, key: t.tls!.key, servername: SERVERNAME, ALPNProtocols: ["http/1.1"] });
      const fail = (): void => {
        failed++;
        s.destroy();
        resolve();
      };
      s.once("error", fail);
      s.once("secureConnect", () => {
        s.write(`GET ${t.prefix}/bytes/10 HTTP/1.1\r\nHost: ${SERVERNAME}\r\nConnection: keep-alive\r\n\r\n`);
        s.once("data", (d: Buffer) => {
          if (!d.toString("latin1").startsWith("HTTP/1.1 200")) return fail();
          s.removeListener("error", fail);
          s.on("error", () => {});
          sockets.push(s);
          resolve();
        });
      });
    });
  for (let done = 0; done < n; ) {
    const batch = Math.min(100, n - done);
    await Promise.all(Array.from({ length: batch }, one));
    done += batch;
  }
  process.stdout.write(JSON.stringify({ open: sockets.length, failed }) + "\n");
  // Held until the parent closes our stdin.
  process.stdin.resume();
  process.stdin.on("end", () => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

// ---------------------------------------------------------------- product parts (child side)

/** Answers the parent's IPC questions; `status` says whether requests can flow. */
function serveIpc(status: () => boolean, stop: () => Promise<void>): void {
  process.on("message", (m: { type: string }) => {
    if (m.type === "rss") process.send!({ type: "rss", rssMiB: rssMiB() } satisfies ChildMessage);
    else if (m.type === "status") process.send!({ type: "status", ready: status() } satisfies ChildMessage);
    else if (m.type === "stop") void stop().then(() => process.exit(0));
  });
  process.on("disconnect", () => void stop().then(() => process.exit(0)));
}

async function runBackend(): Promise<void> {
  const b = await startBackend();
  // The backend keeps no record of the requests: a long run must not grow its memory.
  b.requests.push = () => 0;
  serveIpc(() => true, () => b.close());
  process.send!({ type: "ready", port: b.port } satisfies ChildMessage);
}

async function runGateway(setup: Setup): Promise<void> {
  const logs = new LogSet({ dir: join(setup.dir, "gw") });
  const inst: GatewayInstance = await startGatewayInstance(
    {
      name: "cmg1",
      index: 0,
      serverCert: setup.pki.server,
      client: { host: "127.0.0.1", port: setup.gateway.clientPort },
      tunnel: { host: "127.0.0.1", port: setup.gateway.tunnelPort, siteCaPem: setup.pki.siteCa.certPem, cert: setup.pki.tunnelServer },
      metrics: null,
      limits: { idleTimeoutMs: setup.gateway.idleTimeoutMs },
    },
    { log: gatewayLogs(logs) },
  );
  serveIpc(() => inst.status().ready, async () => {
    await inst.stop({ graceMs: 0 });
    logs.close();
  });
  process.send!({ type: "ready" } satisfies ChildMessage);
}

async function runFloorGateway(setup: Setup): Promise<void> {
  const f = await startFloorGateway(setup.floor);
  serveIpc(() => f.ready(), async () => {});
  process.send!({ type: "ready" } satisfies ChildMessage);
}

function runFloorConnectionPoint(setup: Setup): void {
  startFloorConnectionPoint(setup.floor);
  serveIpc(() => true, async () => {});
  process.send!({ type: "ready" } satisfies ChildMessage);
}

async function runConnectionPoint(setup: Setup, squidPort: number | null): Promise<void> {
  const logs = new LogSet({ dir: join(setup.dir, "cp") });
  const egress = squidPort ? new Egress({ mode: "proxy", host: "127.0.0.1", port: squidPort }, { connectTimeoutMs: 5000 }) : null;
  const cp = await startConnectionPoint({
    name: "cp1.opencmg.test",
    instances: [{ host: "127.0.0.1", port: setup.gateway.tunnelPort }],
    ...(egress ? { dial: (host: string, port: number): Promise<Socket> => egress.connect(host, port) } : {}),
    tls: { certPem: setup.pki.tunnelClient.certPem, keyPem: setup.pki.tunnelClient.keyPem, siteCaPem: setup.pki.siteCa.certPem },
    settings: setup.settings,
    backends: setup.backends,
    log: connectionPointLogs(logs),
    metrics: null,
  });
  serveIpc(() => true, async () => {
    await cp.stop({ drainMs: 0 });
    await egress?.close();
    logs.close();
  });
  process.send!({ type: "ready" } satisfies ChildMessage);
}

// ---------------------------------------------------------------- parent side

function child(mode: string, payload: unknown): ChildProcess {
  return spawn(process.execPath, [...process.execArgv, import.meta.filename, mode, JSON.stringify(payload)], { stdio: ["pipe", "pipe", "inherit"] });
}

/** Reads a child's stdout line by line: each call resolves with the next line. */
function nextLines(c: ChildProcess): () => Promise<string> {
  let buf = "";
  const waiting: ((line: string) => void)[] = [];
  c.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0 && waiting.length > 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()!(line);
    }
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const i = buf.indexOf("\n");
      if (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        return resolve(line);
      }
      waiting.push(resolve);
      c.once("exit", (code) => reject(new Error(`child exited ${code} before answering`)));
    });
}

/** Runs a load job in a child; `onWarm` runs between the warm-up and the timed part. */
async function load(job: LoadJob, onWarm?: () => void): Promise<LoadResult> {
  const c = child("load", job);
  const lines = nextLines(c);
  let line = await lines();
  if (line === "warm") {
    onWarm?.();
    c.stdin!.write("go\n");
    line = await lines();
  }
  c.stdin!.end();
  return JSON.parse(line) as LoadResult;
}

/** A product part in its own process, spoken to over IPC. */
class Part {
  private constructor(readonly proc: ChildProcess) {}

  static async start(mode: string, ...args: string[]): Promise<{ part: Part; port?: number }> {
    // OPENCMG_BENCH_CPU_PROF=DIR: V8 CPU profiles of the product parts, written when they stop.
    const prof = process.env.OPENCMG_BENCH_CPU_PROF;
    const execArgv = [...process.execArgv, ...(prof && mode !== "backend" ? ["--cpu-prof", "--cpu-prof-dir", prof] : [])];
    const proc = fork(import.meta.filename, [mode, ...args], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const part = new Part(proc);
    const m = await part.next("ready");
    return { part, ...(m.type === "ready" && m.port ? { port: m.port } : {}) };
  }

  ask(type: "rss" | "status"): Promise<ChildMessage> {
    const p = this.next(type);
    this.proc.send({ type });
    return p;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.send({ type: "stop" });
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  private next(type: string): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const onMsg = (m: ChildMessage): void => {
        if (m.type !== type) return;
        this.proc.off("message", onMsg);
        this.proc.off("exit", onExit);
        resolve(m);
      };
      const onExit = (code: number | null): void => reject(new Error(`child exited ${code} while waiting for ${type}`));
      this.proc.on("message", onMsg);
      this.proc.once("exit", onExit);
    });
  }
}

async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Nginx {
  pid: number;
  port: number;
  tlsPort: number;
  stop(): Promise<void>;
}

/** nginx, one worker: plain HTTP on `port`, mutual TLS (same certificates as the gateway) on `tlsPort`. */
async function startNginx(backendPort: number, pki: TestPki): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-nginx-"));
  const [port, tlsPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, "server.pem"), pki.server.certPem);
  writeFileSync(join(dir, "server.key"), pki.server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, "clients.pem"), pki.trust.roots.join("\n") + "\n" + pki.trust.intermediates.join("\n"));
  const location = `location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }`;
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off; master_process off; worker_processes 1;
pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/cb; proxy_temp_path ${dir}/pt; fastcgi_temp_path ${dir}/ft; uwsgi_temp_path ${dir}/ut; scgi_temp_path ${dir}/st;
  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }
  server { listen 127.0.0.1:${port}; ${location} }
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${dir}/server.pem; ssl_certificate_key ${dir}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate ${dir}/clients.pem; ssl_verify_client on; ssl_verify_depth 3;
    ${location}
  }
}
`,
  );
  const p = spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { stdio: "ignore" });
  const listening = (port: number): Promise<boolean> =>
    new Promise<boolean>((r) => {
      const s = netConnect(port, "127.0.0.1", () => (s.destroy(), r(true)));
      s.once("error", () => r(false));
    });
  try {
    await waitUntil("nginx", async () => {
      if (p.exitCode !== null) throw new Error("exited");
      return (await listening(port)) && (await listening(tlsPort));
    }, 5000);
  } catch (e) {
    let log = "";
    try { log = readFileSync(join(dir, "error.log"), "utf8"); } catch { /* none */ }
    throw new Error(`nginx did not start (${(e as Error).message}): ${log}`);
  }
  return {
    pid: p.pid!,
    port,
    tlsPort,
    stop: async () => {
      if (p.exitCode === null) {
        const exited = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const n = Number(arg("n", "10000"));
  const conc = Number(arg("conc", "64"));
  const rate = Number(arg("rate", "100"));
  const latN = Number(arg("lat-n", "400"));
  const bytes = Number(arg("mb", "256")) * 1024 * 1024;
  const idleSteps = arg("idle", "1000,5000,15000").split(",").filter(Boolean).map(Number);
  const only = new Set(arg("only", "A,B,C,D,E,F").split(","));

  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-gw-"));
  const squid: TestSquid = await startSquid();
  const crl = await startCrlServer();
  const pki = await makeTestPki({ crlBaseUrl: crl.base });
  crl.files = pki.crlFiles;
  const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: SERVERNAME, dnsNames: [SERVERNAME], ipAddresses: ["127.0.0.1"], usage: "server" });
  const backend = await Part.start("backend");
  const backendUrl = `http://127.0.0.1:${backend.port}`;
  const setup: Setup = {
    dir,
    pki: { server: pki.server, siteCa: pki.siteCa, tunnelServer, tunnelClient: pki.tunnelClient },
    settings: {
      revision: 1,
      trustedRoots: pki.trust.roots,
      intermediates: pki.trust.intermediates,
      crlCheck: true,
      urlMap: { [ROLES.mp]: { kind: "mp", allowCmgTraffic: true } },
    },
    backends: { [ROLES.mp]: backendUrl },
    // Idle connections must outlive the time it takes to open 15,000 of them.
    gateway: { clientPort: await freePort(), tunnelPort: await freePort(), idleTimeoutMs: 15 * 60_000 },
    floor: {
      cert: pki.server.certPem,
      key: pki.server.keyPem,
      clientCa: [...pki.trust.roots, ...pki.trust.intermediates],
      clientPort: await freePort(),
      tunnelPort: await freePort(),
      backendUrl,
      tunnels: 2, // as many as the product's connection point keeps per instance
    },
  };
  const setupFile = join(dir, "setup.json");
  writeFileSync(setupFile, JSON.stringify(setup), { mode: 0o600 });

  const gateway = (await Part.start("gateway", setupFile)).part;
  let cp = (await Part.start("cp", setupFile, "")).part;
  const gatewayReady = async (): Promise<boolean> => ((await gateway.ask("status")) as { ready: boolean }).ready;
  await waitUntil("the gateway's first tunnel", gatewayReady);
  const nginx = await startNginx(backend.port!, pki);
  const floor: Part[] = [];
  if (only.has("F")) {
    floor.push((await Part.start("floor-gw", setupFile)).part);
    floor.push((await Part.start("floor-cp", setupFile)).part);
    await waitUntil("the floor relay's tunnels", async () => ((await floor[0]!.ask("status")) as { ready: boolean }).ready);
  }

  const mtls = { ca: pki.root.certPem, cert: pki.client.certPem, key: pki.client.keyPem };
  const gw: Target = { origin: `https://127.0.0.1:${setup.gateway.clientPort}`, prefix: `/CCM_Proxy_MutualAuth/${ROLES.mp}`, tls: mtls };
  const targets: Record<string, Target> = {
    A: { origin: backendUrl, prefix: "" },
    B: { origin: `http://127.0.0.1:${nginx.port}`, prefix: "" },
    C: { origin: `https://127.0.0.1:${nginx.tlsPort}`, prefix: "", tls: mtls },
    D: gw,
    E: gw,
    F: { origin: `https://127.0.0.1:${setup.floor.clientPort}`, prefix: "", tls: mtls },
  };
  const results: Record<string, { rps: LoadResult; lat: LoadResult; dl: LoadResult; cpuUs: Record<string, number>; cpuMsPerMB: Record<string, number> }> = {};
  const idle: { conns: number; open: number; failed: number; rssMiB: number; perConnKiB: number }[] = [];
  const gatewayRss = async (): Promise<number> => ((await gateway.ask("rss")) as { rssMiB: number }).rssMiB;

  try {
    for (const name of ["A", "B", "C", "D", "E", "F"].filter((x) => only.has(x))) {
      if (name === "E") {
        // Same instance and backend; only the connection point's tunnel now goes through Squid.
        await cp.stop();
        await waitUntil("the gateway to see the tunnel gone", async () => !(await gatewayReady()));
        cp = (await Part.start("cp", setupFile, String(squid.port))).part;
        await waitUntil("the tunnel through Squid", gatewayReady);
      }
      const t = targets[name]!;
      process.stderr.write(`${name}: rps...`);
      // CPU per request of every process on the path, over the timed part of the rps run.
      const pids: Record<string, number> = { backend: backend.part.proc.pid! };
      if (name === "B" || name === "C") pids.nginx = nginx.pid;
      if (name === "F") Object.assign(pids, { gateway: floor[0]!.proc.pid!, cp: floor[1]!.proc.pid! });
      if (name === "D" || name === "E") Object.assign(pids, { gateway: gateway.proc.pid!, cp: cp.proc.pid!, ...(name === "E" ? { squid: squid.pid } : {}) });
      let before: Record<string, number> = {};
      const rps = await load({ kind: "rps", target: t, n, conc, rate, bytes }, () => {
        before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
      });
      const cpuUs: Record<string, number> = { load: rps.cpuUs ?? NaN };
      for (const [k, pid] of Object.entries(pids)) cpuUs[k] = ((cpuSeconds(pid) - before[k]!) * 1e6) / n;
      process.stderr.write(` latency...`);
      const lat = await load({ kind: "latency", target: t, n: latN, conc, rate, bytes });
      process.stderr.write(` download...\n`);
      const dl = await load({ kind: "download", target: t, n: 1, conc, rate, bytes }, () => {
        before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
      });
      const cpuMs: Record<string, number> = { load: (dl.cpuUs ?? NaN) / 1000 };
      for (const [k, pid] of Object.entries(pids)) cpuMs[k] = ((cpuSeconds(pid) - before[k]!) * 1e3) / (bytes / 1e6);
      results[name] = { rps, lat, dl, cpuUs, cpuMsPerMB: cpuMs };
    }

    // Idle authenticated connections last, in the gateway process alone (its heap already warmed by the load).
    if (idleSteps.length > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      const base = await gatewayRss();
      idle.push({ conns: 0, open: 0, failed: 0, rssMiB: base, perConnKiB: 0 });
      const holders: ChildProcess[] = [];
      let open = 0;
      let failed = 0;
      const PER_CHILD = 2500;
      for (const target of idleSteps) {
        while (open + failed < target) {
          const k = Math.min(PER_CHILD, target - open - failed);
          process.stderr.write(`idle: opening ${k} (held ${open})\n`);
          const c = child("idle", { target: gw, n: k });
          holders.push(c);
          const r = JSON.parse(await nextLines(c)()) as { open: number; failed: number };
          open += r.open;
          failed += r.failed;
        }
        await new Promise((r) => setTimeout(r, 1000));
        const rss = await gatewayRss();
        idle.push({ conns: target, open, failed, rssMiB: rss, perConnKiB: ((rss - base) * 1024) / Math.max(1, open) });
      }
      for (const c of holders) c.stdin!.end();
      await Promise.all(holders.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : null)));
    }
  } finally {
    await cp.stop();
    await gateway.stop();
    for (const f of floor) await f.stop();
    await backend.part.stop();
    await nginx.stop();
    await crl.close();
    await squid.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- report
  const f = (x: number | undefined, d = 0): string => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  const lines: string[] = [];
  lines.push(`Gateway benchmark: ${n} requests of ${SMALL} B at ${conc} connections; latency at ${rate} req/s x ${latN}; download ${bytes / 1024 / 1024} MiB`);
  lines.push("A direct (HTTP) | B nginx one hop (HTTP) | C nginx one hop (mTLS) | D gateway+tunnel+connection point (mTLS) | E = D, tunnel via Squid");
  lines.push("F = D's topology as a bare Node relay (bench/floor-relay.ts): Node's own floor for D");
  lines.push("Each part in its own process; load generator: undici, HTTP/1.1, in child processes.");
  lines.push("");
  lines.push(`${"path".padEnd(6)}${"req/s".padStart(10)}${"errors".padStart(8)}${"p50 ms".padStart(10)}${"p99 ms".padStart(10)}${"MB/s".padStart(10)}`);
  for (const [k, r] of Object.entries(results)) {
    lines.push(`${k.padEnd(6)}${f(r.rps.rps).padStart(10)}${String(r.rps.errors + r.lat.errors).padStart(8)}${f(r.lat.p50Ms, 3).padStart(10)}${f(r.lat.p99Ms, 3).padStart(10)}${f(r.dl.mbPerS).padStart(10)}`);
  }
  const R = (a: string, b: string, key: "rps" | "mbPerS"): string => {
    const x = key === "rps" ? results[a]?.rps.rps : results[a]?.dl.mbPerS;
    const y = key === "rps" ? results[b]?.rps.rps : results[b]?.dl.mbPerS;
    return x && y ? (x / y).toFixed(2) : "-";
  };
  const addP50 = (a: string, b: string): string => f((results[a]?.lat.p50Ms ?? NaN) - (results[b]?.lat.p50Ms ?? NaN), 3);
  lines.push("");
  lines.push(`${"ratio".padEnd(6)}${"small req/s".padStart(13)}${"large MB/s".padStart(12)}${"added p50 ms".padStart(14)}   goal`);
  const ratio = (a: string, b: string, goal = ""): void =>
    void lines.push(`${`${a}/${b}`.padEnd(6)}${R(a, b, "rps").padStart(13)}${R(a, b, "mbPerS").padStart(12)}${addP50(a, b).padStart(14)}   ${goal}`);
  ratio("D", "A", ">=0.5 small, >=0.8 large, <=1 ms");
  ratio("D", "B");
  ratio("D", "C");
  ratio("C", "A");
  ratio("E", "D");
  ratio("D", "F");
  ratio("F", "A");
  lines.push("");
  lines.push("CPU per small request, microseconds (user + system from /proc, timed part of the rps run; 10 ms clock ticks)");
  const parts = ["load", "nginx", "gateway", "cp", "squid", "backend"];
  lines.push(`${"path".padEnd(6)}${parts.map((p) => p.padStart(9)).join("")}${"total".padStart(9)}`);
  for (const [k, r] of Object.entries(results)) {
    const sum = Object.values(r.cpuUs).reduce((a, b) => a + b, 0);
    lines.push(`${k.padEnd(6)}${parts.map((p) => f(r.cpuUs[p]).padStart(9)).join("")}${f(sum).padStart(9)}`);
  }
  lines.push("");
  lines.push("CPU per MB of the large download, milliseconds (same method)");
  lines.push(`${"path".padEnd(6)}${parts.map((p) => p.padStart(9)).join("")}${"total".padStart(9)}`);
  for (const [k, r] of Object.entries(results)) {
    const sum = Object.values(r.cpuMsPerMB).reduce((a, b) => a + b, 0);
    lines.push(`${k.padEnd(6)}${parts.map((p) => f(r.cpuMsPerMB[p], 2).padStart(9)).join("")}${f(sum, 2).padStart(9)}`);
  }
  if (idle.length > 0) {
    lines.push("");
    lines.push("Idle authenticated client connections (RSS of the gateway instance's process alone, after GC)");
    lines.push(`${"target".padEnd(8)}${"open".padStart(8)}${"failed".padStart(8)}${"RSS MiB".padStart(10)}${"KiB/conn".padStart(10)}   goal <= 64 KiB/conn at 15,000`);
    for (const r of idle) lines.push(`${String(r.conns).padEnd(8)}${String(r.open).padStart(8)}${String(r.failed).padStart(8)}${f(r.rssMiB, 1).padStart(10)}${(r.conns ? f(r.perConnKiB, 1) : "-").padStart(10)}`);
  }
  console.log(lines.join("\n"));
}

const mode = process.argv[2];
const exitOnError = (err: unknown): void => {
  console.error(err);
  process.exit(1);
};
if (mode === "load") {
  runLoad(JSON.parse(process.argv[3]!) as LoadJob).then((r) => {
    process.stdout.write(JSON.stringify(r) + "\n");
    process.exit(0);
  }, exitOnError);
} else if (mode === "idle") {
  const j = JSON.parse(process.argv[3]!) as { target: Target; n: number };
  runIdle(j.target, j.n).catch(exitOnError);
} else if (mode === "backend") {
  runBackend().catch(exitOnError);
} else if (mode === "gateway") {
  runGateway(JSON.parse(readFileSync(process.argv[3]!, "utf8")) as Setup).catch(exitOnError);
} else if (mode === "floor-gw") {
  runFloorGateway(JSON.parse(readFileSync(process.argv[3]!, "utf8")) as Setup).catch(exitOnError);
} else if (mode === "floor-cp") {
  runFloorConnectionPoint(JSON.parse(readFileSync(process.argv[3]!, "utf8")) as Setup);
} else if (mode === "cp") {
  runConnectionPoint(JSON.parse(readFileSync(process.argv[3]!, "utf8")) as Setup, process.argv[4] ? Number(process.argv[4]) : null).catch(exitOnError);
} else {
  main().then(() => process.exit(0), exitOnError);
}
