/**
 * Gateway data-path benchmark (issue 5): one run, one backend, four paths to it.
 *
 *   A  client -> backend (plain HTTP, loopback)
 *   B  client -> nginx (Debian package, one hop, upstream keep-alive) -> backend
 *   D  client --mTLS--> gateway instance --tunnel--> connection point -> backend
 *   E  like D, with the connection point's tunnel dialled through a real Squid (Egress#connect)
 *
 * The load generator runs in child processes (this same file, `load`/`idle` mode) so it does not
 * share an event loop with the gateway; for D and E it presents the test client certificate.
 *
 *   npx tsx bench/gateway.ts [--n 10000] [--conc 64] [--rate 100] [--lat-n 400] [--mb 256] [--idle 1000,5000]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Pool } from "undici";
import { startCmgHarness, type CmgHarness } from "../test/helpers/cmg-harness.ts";
import { startSquid, type TestSquid } from "../test/helpers/squid.ts";
import { freePort } from "../test/helpers/ports.ts";
import { Egress } from "../src/egress/egress.ts";

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
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  mbPerS?: number;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

// ---------------------------------------------------------------- child side

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
    const t0 = performance.now();
    const n = await get(p, path);
    const s = (performance.now() - t0) / 1000;
    await p.close();
    if (n !== job.bytes) throw new Error(`short download ${n}/${job.bytes}`);
    return { mbPerS: n / 1e6 / s, errors: 0 };
  }
  if (job.kind === "rps") {
    const p = pool(job.target, job.conc);
    let errors = 0;
    const loop = async (count: { left: number }): Promise<void> => {
      while (count.left-- > 0) await get(p, path).catch(() => void errors++);
    };
    const warm = { left: Math.min(1000, job.n) };
    await Promise.all(Array.from({ length: job.conc }, () => loop(warm)));
    const count = { left: job.n };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: job.conc }, () => loop(count)));
    const s = (performance.now() - t0) / 1000;
    await p.close();
    return { rps: job.n / s, errors };
  }
  // Fixed rate, open loop: request i leaves at t0 + i/rate whatever happened to the others.
  const p = pool(job.target, 16);
  for (let i = 0; i < 50; i++) await get(p, path);
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

// ---------------------------------------------------------------- parent side

function child(mode: string, payload: unknown): ChildProcess {
  return spawn(process.execPath, [...process.execArgv, import.meta.filename, mode, JSON.stringify(payload)], { stdio: ["pipe", "pipe", "inherit"] });
}

function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    c.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) resolve(buf.slice(0, i));
    });
    c.once("exit", (code) => reject(new Error(`child exited ${code} before answering`)));
  });
}

async function load(job: LoadJob): Promise<LoadResult> {
  const c = child("load", job);
  const line = await firstLine(c);
  c.stdin!.end();
  return JSON.parse(line) as LoadResult;
}

async function startNginx(backendPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-nginx-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off; master_process off; worker_processes 1;
pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/cb; proxy_temp_path ${dir}/pt; fastcgi_temp_path ${dir}/ft; uwsgi_temp_path ${dir}/ut; scgi_temp_path ${dir}/st;
  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
`,
  );
  const p = spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { stdio: "ignore" });
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect(port, "127.0.0.1", () => (s.destroy(), r(true)));
      s.once("error", () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline || p.exitCode !== null) {
      let log = "";
      try { log = readFileSync(join(dir, "error.log"), "utf8"); } catch { /* none */ }
      throw new Error(`nginx did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
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

const gcNow: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function rssMiB(): number {
  gcNow();
  return process.memoryUsage().rss / 1024 / 1024;
}

async function main(): Promise<void> {
  const n = Number(arg("n", "10000"));
  const conc = Number(arg("conc", "64"));
  const rate = Number(arg("rate", "100"));
  const latN = Number(arg("lat-n", "400"));
  const bytes = Number(arg("mb", "256")) * 1024 * 1024;
  const idleSteps = arg("idle", "1000,5000").split(",").filter(Boolean).map(Number);

  const squid: TestSquid = await startSquid();
  const h: CmgHarness = await startCmgHarness({ instances: 1, connectionPoints: 1, crlCheck: true});
  await h.waitReady();
  const nginx = await startNginx(h.backend.port);
  const egress = new Egress({ mode: "proxy", host: "127.0.0.1", port: squid.port }, { connectTimeoutMs: 5000 });

  const mtls = { ca: h.pki.root.certPem, cert: h.pki.client.certPem, key: h.pki.client.keyPem };
  const gw: Target = { origin: `https://127.0.0.1:${h.ports[0]!.client}`, prefix: `/CCM_Proxy_MutualAuth/${h.roles.mp}`, tls: mtls };
  const targets: Record<string, Target> = {
    A: { origin: h.backend.url, prefix: "" },
    B: { origin: `http://127.0.0.1:${nginx.port}`, prefix: "" },
    D: gw,
    E: gw,
  };
  const results: Record<string, { rps: LoadResult; lat: LoadResult; dl: LoadResult }> = {};
  const idle: { conns: number; open: number; failed: number; rssMiB: number; perConnKiB: number }[] = [];

  try {
    // Idle authenticated connections first, while the heap is not yet grown by the load runs.
    if (idleSteps.length > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      rssMiB();
      const base = rssMiB();
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
          const r = JSON.parse(await firstLine(c)) as { open: number; failed: number };
          open += r.open;
          failed += r.failed;
        }
        await new Promise((r) => setTimeout(r, 1000));
        const rss = rssMiB();
        idle.push({ conns: target, open, failed, rssMiB: rss, perConnKiB: ((rss - base) * 1024) / Math.max(1, open) });
      }
      idle.unshift({ conns: 0, open: 0, failed: 0, rssMiB: base, perConnKiB: 0 });
      for (const c of holders) c.stdin!.end();
      await Promise.all(holders.map((c) => (c.exitCode === null ? new Promise((r) => c.once("exit", r)) : null)));
    }
    for (const name of ["A", "B", "D", "E"]) {
      if (name === "E") {
        // Same instance and backend; only the connection point's tunnel now goes through Squid.
        await h.killConnectionPoint(0);
        await h.startConnectionPoint(0, { dial: (host, port) => egress.connect(host, port) });
        await h.waitReady();
      }
      const t = targets[name]!;
      process.stderr.write(`${name}: rps...`);
      const rps = await load({ kind: "rps", target: t, n, conc, rate, bytes });
      h.backend.requests.length = 0;
      process.stderr.write(` latency...`);
      const lat = await load({ kind: "latency", target: t, n: latN, conc, rate, bytes });
      process.stderr.write(` download...\n`);
      const dl = await load({ kind: "download", target: t, n: 1, conc, rate, bytes });
      h.backend.requests.length = 0;
      results[name] = { rps, lat, dl };
    }

  } finally {
    await h.close();
    await egress.close();
    await nginx.stop();
    await squid.stop();
  }

  // ---------------------------------------------------------------- report
  const f = (x: number | undefined, d = 0): string => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  const lines: string[] = [];
  lines.push(`Gateway benchmark: ${n} requests of ${SMALL} B at ${conc} connections; latency at ${rate} req/s x ${latN}; download ${bytes / 1024 / 1024} MiB`);
  lines.push("A direct (HTTP) | B nginx one hop (HTTP, upstream keep-alive) | D gateway+tunnel (mTLS, HTTP/1.1) | E = D, tunnel via Squid");
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
  lines.push("");
  lines.push(`${"ratio".padEnd(6)}${"small req/s".padStart(13)}${"large MB/s".padStart(12)}${"added p50 ms".padStart(14)}   goal`);
  const addP50 = (a: string, b: string): string => f((results[a]?.lat.p50Ms ?? NaN) - (results[b]?.lat.p50Ms ?? NaN), 3);
  lines.push(`${"D/A".padEnd(6)}${R("D", "A", "rps").padStart(13)}${R("D", "A", "mbPerS").padStart(12)}${addP50("D", "A").padStart(14)}   >=0.5 small, >=0.8 large, <=1 ms`);
  lines.push(`${"D/B".padEnd(6)}${R("D", "B", "rps").padStart(13)}${R("D", "B", "mbPerS").padStart(12)}${addP50("D", "B").padStart(14)}`);
  lines.push(`${"E/D".padEnd(6)}${R("E", "D", "rps").padStart(13)}${R("E", "D", "mbPerS").padStart(12)}${addP50("E", "D").padStart(14)}`);
  if (idle.length > 0) {
    lines.push("");
    lines.push("Idle authenticated client connections (RSS of the process holding the instance, connection point and backend; after GC)");
    lines.push(`${"target".padEnd(8)}${"open".padStart(8)}${"failed".padStart(8)}${"RSS MiB".padStart(10)}${"KiB/conn".padStart(10)}   goal <= 64 KiB/conn`);
    for (const r of idle) lines.push(`${String(r.conns).padEnd(8)}${String(r.open).padStart(8)}${String(r.failed).padStart(8)}${f(r.rssMiB, 1).padStart(10)}${(r.conns ? f(r.perConnKiB, 1) : "-").padStart(10)}`);
  }
  console.log(lines.join("\n"));
}

const mode = process.argv[2];
if (mode === "load") {
  runLoad(JSON.parse(process.argv[3]!) as LoadJob).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + "\n");
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
} else if (mode === "idle") {
  const j = JSON.parse(process.argv[3]!) as { target: Target; n: number };
  void runIdle(j.target, j.n);
} else {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
