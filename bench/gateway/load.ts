/**
 * The load generator of bench/gateway.ts, run in child processes (`bench/gateway/child.ts load|idle`):
 * undici over HTTP/1.1, as devices do, presenting the test client certificate where the target asks.
 */
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Pool } from "undici";

export const SERVERNAME = "cmg.opencmg.test";
export const SMALL = 100;

/** A client certificate and its key (PEM). */
export interface ClientId {
  cert: string;
  key: string;
}

/** What a child needs to reach one target. */
export interface Target {
  origin: string;
  /** Path prefix in front of "/bytes/<n>". */
  prefix: string;
  /**
   * `ids`: the client identities the connections present, spread evenly over them (connection i
   * presents ids[i % ids.length]). Several devices, as in production: the gateway caps requests in
   * progress per identity (maxRequestsPerClientIdentity), so one certificate at 64 connections
   * would measure that cap, not the relay.
   */
  tls?: { ca: string; ids: ClientId[] };
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
  /** Failed requests by what failed: the HTTP status, or the error's code for a request that got none. */
  errorsBy: Record<string, number>;
  p50Ms?: number;
  p99Ms?: number;
  mbPerS?: number;
}

/** Requests sent before the clock starts in an rps run. */
const warmCount = (n: number): number => Math.min(2000, n);

/** Pools of `connections` connections in all, one pool per client identity used (fewer when connections are fewer). */
function pools(t: Target, connections: number): Pool[] {
  const ids = t.tls?.ids ?? [null];
  const k = Math.max(1, Math.min(ids.length, connections));
  return Array.from({ length: k }, (_, i) => {
    const id = ids[i];
    const share = Math.floor(connections / k) + (i < connections % k ? 1 : 0);
    return new Pool(t.origin, {
      connections: share,
      pipelining: 1,
      ...(t.tls && id ? { connect: { ca: t.tls.ca, cert: id.cert, key: id.key, servername: SERVERNAME } } : {}),
    });
  });
}

class StatusError extends Error {
  constructor(readonly status: number) {
    super(`status ${status}`);
  }
}

async function get(p: Pool, path: string): Promise<number> {
  const r = await p.request({ path, method: "GET" });
  let n = 0;
  for await (const c of r.body) n += (c as Buffer).length;
  if (r.statusCode !== 200) throw new StatusError(r.statusCode);
  return n;
}

/** Counts failures by status (or error code). */
class Errors {
  count = 0;
  by: Record<string, number> = {};
  add = (e: unknown): void => {
    this.count++;
    const k = e instanceof StatusError ? String(e.status) : String((e as { code?: unknown }).code ?? (e as Error).message ?? e);
    this.by[k] = (this.by[k] ?? 0) + 1;
  };
}

/** Says "warm" on stdout, then waits for the parent's go (it reads the other processes' CPU meanwhile). */
async function warmThenWait(): Promise<void> {
  process.stdout.write("warm\n");
  await new Promise((r) => process.stdin.once("data", r));
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const path = `${job.target.prefix}/bytes/${job.kind === "download" ? job.bytes : SMALL}`;
  if (job.kind === "download") {
    const [p] = pools(job.target, 1) as [Pool];
    await get(p, `${job.target.prefix}/bytes/${SMALL}`); // connection up before the clock starts
    await warmThenWait();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const n = await get(p, path);
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await p.close();
    if (n !== job.bytes) throw new Error(`short download ${n}/${job.bytes}`);
    return { mbPerS: n / 1e6 / s, cpuUs: (cpu.user + cpu.system) / (n / 1e6), errors: 0, errorsBy: {} };
  }
  if (job.kind === "rps") {
    const ps = pools(job.target, job.conc);
    const warmErrors = new Errors();
    const errors = new Errors();
    // Loop i uses pool i % pools: each pool's connections are kept busy by as many loops.
    const loop = async (p: Pool, count: { left: number }, e: Errors): Promise<void> => {
      while (count.left-- > 0) await get(p, path).catch(e.add);
    };
    const loops = (count: { left: number }, e: Errors): Promise<void[]> => Promise.all(Array.from({ length: job.conc }, (_, i) => loop(ps[i % ps.length]!, count, e)));
    await loops({ left: warmCount(job.n) }, warmErrors);
    await warmThenWait(); // connections open, code compiled
    const cpu0 = process.cpuUsage();
    const count = { left: job.n };
    const t0 = performance.now();
    await loops(count, errors);
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await Promise.all(ps.map((p) => p.close()));
    // The warm-up's failures count too, named apart.
    for (const [k, v] of Object.entries(warmErrors.by)) errors.by[`${k} (warm-up)`] = v;
    errors.count += warmErrors.count;
    return { rps: job.n / s, cpuUs: (cpu.user + cpu.system) / job.n, errors: errors.count, errorsBy: errors.by };
  }
  // Fixed rate, open loop: request i leaves at t0 + i/rate whatever happened to the others.
  const ps = pools(job.target, 16);
  for (let i = 0; i < 100; i++) await get(ps[i % ps.length]!, path);
  const lat: number[] = [];
  const errors = new Errors();
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < job.n; i++) {
    const due = t0 + (i * 1000) / job.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const s = performance.now();
    all.push(get(ps[i % ps.length]!, path).then(() => void lat.push(performance.now() - s), errors.add));
  }
  await Promise.all(all);
  await Promise.all(ps.map((p) => p.close()));
  lat.sort((a, b) => a - b);
  const q = (x: number): number => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] ?? NaN;
  return { p50Ms: q(0.5), p99Ms: q(0.99), errors: errors.count, errorsBy: errors.by };
}

/** Opens `n` authenticated client connections (TLS with client cert + one request each) and holds them. */
export async function runIdle(t: Target, n: number): Promise<void> {
  const url = new URL(t.origin);
  const sockets: TLSSocket[] = [];
  let failed = 0;
  let opened = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const id = t.tls!.ids[opened++ % t.tls!.ids.length]!;
      const s = tlsConnect({ host: url.hostname, port: Number(url.port), ca: t.tls!.ca, cert: id.cert, key: id.key, servername: SERVERNAME, ALPNProtocols: ["http/1.1"] });
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
