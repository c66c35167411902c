/**
 * The endpoint checker's concurrency, through a real Squid.
 *
 *   npx tsx bench/endpoint-check.ts [--count 200] [--slow-every 10] [--slow-ms 300] [--auth]
 *
 * A child process serves the stand-in endpoints (so they never share a thread with the checker
 * being measured): `--count` names (`ep-001.bench.opencmg.test`...) that Squid's hosts_file
 * points at loopback, three in four HTTPS (a certificate from a test CA for *.bench.opencmg.test)
 * and one in four plain HTTP, like the catalog's mix. Every `--slow-every`-th endpoint answers its
 * HEAD after `--slow-ms`. The same targets are then checked through Squid, in one run, with the
 * product's concurrency (CHECK_CONCURRENCY) and with concurrency 1; the total times and their
 * ratio are printed, and every endpoint must pass in both.
 */
import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Egress } from "../src/egress/egress.ts";
import { CHECK_CONCURRENCY, checkEndpoints, type CheckReport, type CheckTarget } from "../src/endpoints/checker.ts";
import { createCa, issueCert } from "../src/pki/issue.ts";
import { startSquid } from "../test/helpers/squid.ts";
import { Child } from "./lib/child.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "200" },
    "slow-every": { type: "string", default: "10" },
    "slow-ms": { type: "string", default: "300" },
    auth: { type: "boolean", default: false },
    serve: { type: "boolean", default: false }, // internal: the child process
  },
});
const count = Number(values.count);
const slowEvery = Number(values["slow-every"]);
const slowMs = Number(values["slow-ms"]);
const DOMAIN = "bench.opencmg.test";
const name = (i: number): string => `ep-${String(i + 1).padStart(3, "0")}.${DOMAIN}`;
const isSlow = (i: number): boolean => slowEvery > 0 && (i + 1) % slowEvery === 0;
const isHttp = (i: number): boolean => i % 4 === 3;

interface Served {
  httpsPort: number;
  httpPort: number;
  caPem: string;
}

if (values.serve) {
  // Child: the stand-ins, until stdin closes. The slow ones are recognised by their Host header.
  const ca = await createCa({ commonName: "OpenCMG Bench CA" });
  const cert = await issueCert({ issuer: ca, commonName: `*.${DOMAIN}`, dnsNames: [`*.${DOMAIN}`], usage: "server" });
  const slow = new Set(Array.from({ length: count }, (_, i) => i).filter(isSlow).map(name));
  const answer: RequestListener = (req, res) => {
    const host = (req.headers.host ?? "").split(":")[0]!;
    const reply = (): void => {
      res.writeHead(200, { "content-length": 0 });
      res.end();
    };
    if (slow.has(host)) setTimeout(reply, slowMs);
    else reply();
  };
  const https = createHttpsServer({ cert: cert.certPem, key: cert.keyPem, keepAliveTimeout: 30_000 }, answer);
  const http = createHttpServer({ keepAliveTimeout: 30_000 }, answer);
  await Promise.all([https, http].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", r))));
  const served: Served = { httpsPort: (https.address() as AddressInfo).port, httpPort: (http.address() as AddressInfo).port, caPem: ca.certPem };
  process.stdout.write(JSON.stringify(served) + "\n");
  process.stdin.resume();
  process.stdin.once("end", () => process.exit(0));
} else {
  await main();
}

async function main(): Promise<void> {
  const account = values.auth ? { username: "bench", password: "bench-pass" } : undefined;
  const child = Child.node(import.meta.filename, ["--serve", "--count", String(count), "--slow-every", String(slowEvery), "--slow-ms", String(slowMs)], { name: "stand-ins", stdin: "pipe" });
  const served = JSON.parse(await child.line()) as Served;
  const hosts = Object.fromEntries(Array.from({ length: count }, (_, i) => [name(i), "127.0.0.1"]));
  const squid = await startSquid({ hosts, ...(account ? { auth: account } : {}) });
  try {
    const targets: CheckTarget[] = Array.from({ length: count }, (_, i) => {
      const scheme = isHttp(i) ? "http" : "https";
      const port = scheme === "http" ? served.httpPort : served.httpsPort;
      return { url: `${scheme}://${name(i)}:${port}/`, scheme, host: name(i), port, path: "/", endpointIds: [`bench/${i + 1}`], address: name(i), required: true };
    });
    const slow = targets.filter((_, i) => isSlow(i)).length;
    const http = targets.filter((t) => t.scheme === "http").length;
    console.log(`${count} stand-in endpoints (${count - http} https, ${http} http; ${slow} answer after ${slowMs} ms) through Squid ${squid.host}:${squid.port}${account ? " with Basic auth" : ""}`);

    const egress = new Egress({ mode: "proxy", host: squid.host, port: squid.port, ...(account ? { credentials: account } : {}) }, { ca: [served.caPem] });
    const check = (concurrency: number): Promise<CheckReport> => checkEndpoints(targets, { egress, ca: [served.caPem], concurrency, stageTimeoutMs: 10_000 });
    // Warm-up (untimed, a few endpoints): the product is a long-running process, its JIT is warm.
    await checkEndpoints(targets.slice(0, 8), { egress, ca: [served.caPem], concurrency: 8 });

    const parallel = await check(CHECK_CONCURRENCY);
    const serial = await check(1);
    await egress.close();
    for (const [label, r] of [["parallel", parallel], ["serial", serial]] as const) {
      const bad = r.results.filter((x) => x.result !== "pass");
      if (bad.length > 0) throw new Error(`${label}: ${bad.length} endpoint(s) did not pass, e.g. ${bad[0]!.url}: ${bad[0]!.result} ${bad[0]!.message}`);
    }
    // Mean time of each stage that ran: where the time goes (a busy proxy shows in connect).
    const stages = (r: CheckReport): string =>
      (["connect", "tls", "http"] as const)
        .map((st) => {
          const xs = r.results.flatMap((x) => x.stages.filter((s) => s.stage === st && s.result === "pass" && !(st !== "http" && x.scheme === "http")).map((s) => s.ms));
          return `${st} ${(xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)).toFixed(1)}`;
        })
        .join(", ");
    const perEndpoint = (r: CheckReport): string => `${(r.ms / count).toFixed(1)} ms/endpoint; mean ms per stage: ${stages(r)}`;
    console.log(`concurrency ${String(CHECK_CONCURRENCY).padStart(2)} (product)  ${(parallel.ms / 1000).toFixed(2).padStart(7)} s   (${perEndpoint(parallel)})`);
    console.log(`concurrency  1            ${(serial.ms / 1000).toFixed(2).padStart(7)} s   (${perEndpoint(serial)})`);
    console.log(`ratio serial / product    ${(serial.ms / parallel.ms).toFixed(1).padStart(7)} x   (all ${count} endpoints passed in both runs)`);
  } finally {
    await squid.stop();
    child.endInput();
    await child.exited;
  }
}
