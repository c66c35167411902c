/**
 * Egress download throughput against curl, through the same real Squid.
 *
 *   npx tsx bench/egress-download.ts [--mb 200] [--runs 1] [--https] [--auth]
 *
 * A child process serves a generated file (random bytes, in memory) from the local "internet"
 * stand-in, so the server never shares a thread with the client being measured. The file is then
 * downloaded through Squid, in turn, with:
 *   - curl -x                 (to a file)
 *   - Egress#request          (the product's egress module, streamed to a file, like curl)
 *   - downloadToFile          (the same plus what the product adds: SHA-256 check and a flush
 *                              to disk before the atomic rename)
 * and MB/s are printed with the ratios to curl (best of --runs; goal: egress / curl >= 0.9).
 * Egress first fetches 8 MB untimed (a running product has a warm JIT and connection pool).
 */
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { createHash, randomBytes } from "node:crypto";
import { downloadToFile } from "../src/egress/download.ts";
import { Egress } from "../src/egress/egress.ts";
import { serveBytes, startInternet } from "../test/helpers/internet.ts";
import { startSquid } from "../test/helpers/squid.ts";
import { Child, run } from "./lib/child.ts";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "200" },
    runs: { type: "string", default: "1" },
    https: { type: "boolean", default: false },
    auth: { type: "boolean", default: false },
    serve: { type: "boolean", default: false }, // internal: the child process
  },
});
const size = Number(values.mb) * 1024 * 1024;

interface Served {
  url: { http: string; https: string };
  warmUrl: { http: string; https: string };
  hosts: Record<string, string>;
  caPem: string;
  sha256: string;
}

if (values.serve) {
  // Child: serve the file until stdin closes.
  const content = randomBytes(size);
  const internet = await startInternet();
  internet.route("/big.bin", serveBytes(content));
  internet.route("/warm.bin", serveBytes(content.subarray(0, 8 * 1024 * 1024)));
  const served: Served = {
    url: { http: internet.url("http", "/big.bin"), https: internet.url("https", "/big.bin") },
    warmUrl: { http: internet.url("http", "/warm.bin"), https: internet.url("https", "/warm.bin") },
    hosts: internet.hosts(),
    caPem: internet.ca.certPem,
    sha256: createHash("sha256").update(content).digest("hex"),
  };
  process.stdout.write(JSON.stringify(served) + "\n");
  process.stdin.resume();
  process.stdin.once("end", () => void internet.stop().then(() => process.exit(0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const runs = Number(values.runs);
  const account = values.auth ? { username: "bench", password: "bench-pass" } : undefined;
  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-"));
  process.stdout.write(`generating and serving ${values.mb} MB in a child process... `);
  const child = Child.node(import.meta.filename, ["--serve", "--mb", String(values.mb)], { name: "file server", stdin: "pipe" });
  const served = JSON.parse(await child.line()) as Served;
  const squid = await startSquid({ hosts: served.hosts, ...(account ? { auth: account } : {}) });
  try {
    const url = values.https ? served.url.https : served.url.http;
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, served.caPem);
    console.log(`done.\n${url} through Squid ${squid.host}:${squid.port}${account ? " with Basic auth" : ""}, ${runs} run(s)`);

    const egress = new Egress(
      { mode: "proxy", host: squid.host, port: squid.port, ...(account ? { credentials: account } : {}) },
      { ca: [served.caPem] },
    );
    // Warm-up (untimed, 8 MB): the product is a long-running process, its JIT and pool are warm.
    await (await egress.request(values.https ? served.warmUrl.https : served.warmUrl.http)).body.dump({ limit: Infinity });
    const times = { curl: [] as number[], egress: [] as number[], download: [] as number[] };
    const check = (file: string): void => {
      if (statSync(file).size !== size) throw new Error(`${file}: wrong size`);
      rmSync(file);
    };
    for (let i = 0; i < runs; i++) {
      const c = join(dir, "curl.bin");
      const proxyUser = account ? ["-U", `${account.username}:${account.password}`] : [];
      times.curl.push(await timed(async () => void (await run("curl", ["-sS", "--fail", "-x", `http://${squid.host}:${squid.port}`, ...proxyUser, "--cacert", caFile, "-o", c, url]))));
      check(c);
      const e = join(dir, "egress.bin");
      times.egress.push(
        await timed(async () => {
          const res = await egress.request(url);
          await pipeline(res.body, createWriteStream(e));
        }),
      );
      check(e);
      const d = join(dir, "download.bin");
      times.download.push(await timed(() => downloadToFile(egress, url, d, { expectedSize: size, sha256: served.sha256 }).then(() => {})));
      check(d);
    }
    await egress.close();

    const mbps = (xs: number[]): number => size / 1024 / 1024 / Math.min(...xs);
    const list = (xs: number[]): string => xs.map((t) => `${t.toFixed(2)} s`).join(", ");
    const curl = mbps(times.curl);
    console.log(`curl -x          ${curl.toFixed(1).padStart(7)} MB/s   (${list(times.curl)})`);
    console.log(`Egress#request   ${mbps(times.egress).toFixed(1).padStart(7)} MB/s   (${list(times.egress)})   ratio ${(mbps(times.egress) / curl).toFixed(2)} (goal >= 0.90)`);
    console.log(`downloadToFile   ${mbps(times.download).toFixed(1).padStart(7)} MB/s   (${list(times.download)})   ratio ${(mbps(times.download) / curl).toFixed(2)} (adds SHA-256 + flush)`);
  } finally {
    await squid.stop();
    child.endInput();
    await child.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}
