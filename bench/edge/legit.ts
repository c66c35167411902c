/**
 * The legitimate client of bench/edge.ts, in its own child process: `legit.ts JOB_JSON`.
 * Opens its connections (undici, HTTP/1.1, the test client certificate) with a few requests and
 * prints "warm". Then, for each line on stdin, sends small requests at a fixed rate, open loop
 * (request i leaves at t0 + i/rate whatever happened to the others), each bounded by a timeout,
 * and prints one JSON line: p50/p99 of the answered requests, errors and timeouts. It exits when
 * its stdin closes. The same connections serve the run without attack and the one during it.
 * Unlike bench/gateway's load generator, a failed request is counted, never fatal: under attack
 * failures are the finding.
 */
import { Pool } from "undici";
import { SERVERNAME, type Target } from "../gateway/load.ts";

export interface LegitJob {
  target: Target;
  rate: number;
  seconds: number;
  timeoutMs: number;
}

export interface LegitResult {
  sent: number;
  ok: number;
  errors: number;
  timeouts: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

async function main(): Promise<void> {
  const j = JSON.parse(process.argv[2]!) as LegitJob;
  const t = j.target;
  const p = new Pool(t.origin, {
    connections: 16,
    pipelining: 1,
    headersTimeout: j.timeoutMs,
    bodyTimeout: j.timeoutMs,
    connect: { ca: t.tls!.ca, cert: t.tls!.ids[0]!.cert, key: t.tls!.ids[0]!.key, servername: SERVERNAME, timeout: j.timeoutMs },
  });
  const path = `${t.prefix}/bytes/100`;
  const get = async (): Promise<void> => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error("timeout")), j.timeoutMs);
    try {
      const r = await p.request({ path, method: "GET", signal: ac.signal });
      for await (const _ of r.body);
      if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
    } finally {
      clearTimeout(timer);
    }
  };
  const warm = await Promise.allSettled(Array.from({ length: 20 }, get));
  process.stdout.write(`warm ${warm.filter((w) => w.status === "rejected").length}\n`);
  const measure = async (): Promise<LegitResult> => {
    let firstError: string | undefined;
    const lat: number[] = [];
    let errors = 0;
    let timeouts = 0;
    const n = Math.round(j.rate * j.seconds);
    const all: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const wait = t0 + (i * 1000) / j.rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const s = performance.now();
      all.push(
        get().then(
          () => void lat.push(performance.now() - s),
          (e: unknown) => {
            const msg = String((e as Error)?.message ?? e);
            if (/timeout/i.test(msg) || (e as Error)?.name === "AbortError") timeouts++;
            else errors++;
            firstError ??= msg;
          },
        ),
      );
    }
    await Promise.all(all);
    lat.sort((a, b) => a - b);
    const q = (x: number): number => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] ?? NaN;
    return { sent: n, ok: lat.length, errors, timeouts, p50Ms: q(0.5), p99Ms: q(0.99), ...(firstError ? { firstError } : {}) };
  };
  process.stdin.setEncoding("utf8");
  process.stdin.on("end", () => void p.destroy().finally(() => process.exit(0)));
  // One measurement per line received, one after the other.
  let queue = Promise.resolve();
  process.stdin.on("data", (d: string) => {
    for (let k = d.split("\n").length - 1; k > 0; k--) queue = queue.then(async () => void process.stdout.write(JSON.stringify(await measure()) + "\n"));
  });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
