/**
 * The load generator of bench/gateway.ts, run in child processes (`bench/gateway/child.ts load|idle`):
 * undici over HTTP/1.1, as devices do, presenting the test client certificate where the target asks.
 */
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Pool } from "undici";

export const SERVERNAME = "cmg.opencmg.test";
export const SMALL = 100;

/** What a child needs to reach one target. */
export interface Target {
  origin: string;
  /** Path prefix in front of "/bytes/<n>". */
  prefix: string;
  tls?: { ca: string; cert: string; key: string };
}

export interface LoadJob {
  kind: "rps" | "latency" | "download";
  target: Target;
  n: number;
  conc: number;
  rate: number;
  bytes: number;
}

export interface LoadResult {
  rps?: number;
  /** CPU time of the load generator per request (rps runs), per MB (download, microseconds). */
  cpuUs?: number;
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  mbPerS?: number;
}

/** Requests sent before the clock starts in an rps run. */
const warmCount = (n: number): number => Math.min(2000, n);

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

/** Says "warm" on stdout, then waits for the parent's go (it reads the other processes' CPU meanwhile). */
async function warmThenWait(): Promise<void> {
  process.stdout.write("warm\n");
  await new Promise((r) => process.stdin.once("data", r));
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const path = `${job.target.prefix}/bytes/${job.kind === "download" ? job.bytes : SMALL}`;
  if (job.kind === "download") {
    const p = pool(job.target, 1);
    await get(p, `${job.target.prefix}/bytes/${SMALL}`); // connection up before the clock starts
    await warmThenWait();
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
    await warmThenWait(); // connections open, code compiled
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
export async function runIdle(t: Target, n: number): Promise<void> {
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
