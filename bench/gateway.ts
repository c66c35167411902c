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
 *   F1 like F with the tunnel a pool of reverse HTTP/1.1 connections instead of reverse HTTP/2
 *   G  D's two hops built from nginx: C's front, then TLS (client certificate) to a second nginx
 *      that proxies to the backend: what two C-speed hops cost, the limit for D
 *   H  what an administrator would build by hand: nginx (mTLS, like C) in front of an OpenSSH
 *      reverse tunnel (`ssh -R` from the "on-premises" side to a private sshd)
 *
 * Every part runs in its own process, as in production: the backend, the gateway instance, the
 * connection point, and the load generator (bench/gateway/child.ts in `backend`, `gateway`, `cp`,
 * `load` and `idle` modes). For C, D, E, F, G and H the load generator presents the test client
 * certificate. The idle-connection figures are the RSS of the gateway instance's process alone.
 *
 *   npx tsx bench/gateway.ts [--n 10000] [--conc 64] [--rate 100] [--lat-n 400] [--mb 256]
 *                            [--idle 1000,5000,15000] [--only A,B,C,D,E,F,F1,G,H] [--workers 1,2] [--ids 8]
 *                            [--repeat 1]
 *
 * `--ids 8`: the load generator's connections present that many client certificates (devices),
 * spread evenly: the gateway caps requests in progress per identity (64), so one certificate at
 * 64 connections would measure that cap. Every row's failed requests are printed by status.
 *
 * `--workers 1,2`: row D again for each count, as `Dw1`, `Dw2`, ..., against a real
 * `opencmg gateway serve --workers N` (bench/gateway/served.ts; `npm run build` first), the
 * connection point dialling every worker; the CPU of each of the instance's processes (primary,
 * every worker) is printed apart, and the gateway column is their sum.
 *
 * `--repeat 3`: every row (the served ones included) measured that many times, interleaved; the
 * tables show each figure's median, and the relay's CPU per small request is printed for every
 * repetition with D/F per repetition (bench/gateway/repeat.ts). On a shared machine one run's
 * figures move by a fifth from run to run.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ROLES, startCrlServer } from "../test/helpers/cmg-harness.ts";
import { makeTestPki } from "../test/helpers/pki-fixtures.ts";
import { startSquid } from "../test/helpers/squid.ts";
import { freePort } from "../test/helpers/ports.ts";
import { issueCert } from "../src/pki/issue.ts";
import { arg, cpuSeconds, treeCpuSeconds, waitUntil } from "./lib/child.ts";
import { holdIdle, load, Part } from "./gateway/harness.ts";
import { SERVERNAME, type Target } from "./gateway/load.ts";
import { startBaselineNginx, startFrontNginx, startTwoHopNginx, type Nginx } from "./gateway/nginx.ts";
import type { Setup } from "./gateway/parts.ts";
import { siteSigned } from "../test/helpers/settings-signer.ts";
import { report, type IdleStep, type RowResult } from "./gateway/report.ts";
import { medianRow, spreadLines } from "./gateway/repeat.ts";
import { startServedGateway } from "./gateway/served.ts";
import { startSshTunnel, type SshTunnel } from "./gateway/ssh.ts";

const ROWS = ["A", "B", "C", "D", "E", "F", "F1", "G", "H"];

async function main(): Promise<void> {
  const n = Number(arg("n", "10000"));
  const conc = Number(arg("conc", "64"));
  const rate = Number(arg("rate", "100"));
  const latN = Number(arg("lat-n", "400"));
  const bytes = Number(arg("mb", "256")) * 1024 * 1024;
  const idleSteps = arg("idle", "1000,5000,15000").split(",").filter(Boolean).map(Number);
  const only = new Set(arg("only", ROWS.join(",")).split(","));
  const workerCounts = arg("workers", "").split(",").filter(Boolean).map(Number);
  const idCount = Number(arg("ids", "8"));
  if (!Number.isInteger(idCount) || idCount < 1) throw new Error("--ids: a number of client identities, 1 or more");
  if (workerCounts.some((w) => !Number.isInteger(w) || w < 1)) throw new Error("--workers: worker counts, e.g. 1,2");
  const repeat = Number(arg("repeat", "1"));
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 9) throw new Error("--repeat: how many times each row is measured, 1 to 9");

  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-gw-"));
  const stops: (() => Promise<void>)[] = []; // run in reverse order at the end
  try {
    const squid = await startSquid();
    stops.push(() => squid.stop());
    const crl = await startCrlServer();
    stops.push(() => crl.close());
    const pki = await makeTestPki({ crlBaseUrl: crl.base });
    crl.files = pki.crlFiles;
    const tunnelServer = await issueCert({ issuer: pki.siteCa, commonName: SERVERNAME, dnsNames: [SERVERNAME], ipAddresses: ["127.0.0.1"], usage: "server" });
    const backend = await Part.start("backend");
    stops.push(() => backend.part.stop());
    const backendUrl = `http://127.0.0.1:${backend.port}`;
    const setup: Setup = {
      dir,
      pki: { server: pki.server, siteCa: pki.siteCa, tunnelServer, tunnelClient: pki.tunnelClient },
      ...siteSigned(
        {
          revision: 1,
          trustedRoots: pki.trust.roots,
          intermediates: pki.trust.intermediates,
          crlCheck: true,
          urlMap: { [ROLES.mp]: { kind: "mp", allowCmgTraffic: true } },
        },
        pki.tunnelClient,
      ),
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
        // F1: one reverse HTTP/1.1 connection per client connection of the load (one request at a time each), and a few spare.
        h1: { clientPort: await freePort(), tunnelPort: await freePort(), connections: conc + 8 },
      },
    };
    const setupFile = join(dir, "setup.json");
    writeFileSync(setupFile, JSON.stringify(setup), { mode: 0o600 });

    const gateway = (await Part.start("gateway", setupFile)).part;
    stops.push(() => gateway.stop());
    let cp = (await Part.start("cp", setupFile, "")).part;
    stops.push(() => cp.stop());
    await waitUntil("the gateway's first tunnel", () => gateway.ready());
    const nginx = await startBaselineNginx(backend.port!, pki);
    stops.push(() => nginx.stop());
    const floor: Part[] = [];
    if (only.has("F")) {
      floor.push((await Part.start("floor-gw", setupFile)).part, (await Part.start("floor-cp", setupFile)).part);
      stops.push(async () => void (await Promise.all(floor.map((f) => f.stop()))));
      await waitUntil("the floor relay's tunnels", () => floor[0]!.ready());
    }
    const floorH1: Part[] = [];
    if (only.has("F1")) {
      floorH1.push((await Part.start("floor-h1-gw", setupFile)).part, (await Part.start("floor-h1-cp", setupFile)).part);
      stops.push(async () => void (await Promise.all(floorH1.map((f) => f.stop()))));
      await waitUntil("the HTTP/1.1 floor relay's pool", () => floorH1[0]!.ready());
    }
    let twoHop: { front: Nginx; inner: Nginx; port: number } | null = null;
    if (only.has("G")) {
      const g = await startTwoHopNginx(backend.port!, pki, { siteCa: pki.siteCa, server: tunnelServer, client: pki.tunnelClient });
      twoHop = g;
      stops.push(async () => (await g.front.stop(), await g.inner.stop()));
    }
    let ssh: SshTunnel | null = null;
    let sshFront: (Nginx & { port: number }) | null = null;
    if (only.has("H")) {
      const t = await startSshTunnel(backend.port!);
      ssh = t;
      stops.push(() => t.stop());
      const fr = await startFrontNginx(t.port, pki);
      sshFront = fr;
      stops.push(() => fr.stop());
    }

    // Client identities: the test client, then more devices from the same issuing CA.
    const ids = [{ cert: pki.client.certPem, key: pki.client.keyPem }];
    for (let i = 1; i < idCount; i++) {
      const c = await issueCert({ issuer: pki.intermediate, commonName: `PC-BENCH-${i}`, usage: "client", ...(pki.crlUrls.intermediate ? { crlUrl: pki.crlUrls.intermediate } : {}) });
      ids.push({ cert: c.certPem, key: c.keyPem });
    }
    const mtls = { ca: pki.root.certPem, ids };
    const gw: Target = { origin: `https://127.0.0.1:${setup.gateway.clientPort}`, prefix: `/CCM_Proxy_MutualAuth/${ROLES.mp}`, tls: mtls };
    const https = (port: number): Target => ({ origin: `https://127.0.0.1:${port}`, prefix: "", tls: mtls });
    const targets: Record<string, Target> = {
      A: { origin: backendUrl, prefix: "" },
      B: { origin: `http://127.0.0.1:${nginx.port}`, prefix: "" },
      C: https(nginx.tlsPort),
      D: gw,
      E: gw,
      F: https(setup.floor.clientPort),
      F1: https(setup.floor.h1.clientPort),
      ...(twoHop ? { G: https(twoHop.port) } : {}),
      ...(sshFront ? { H: https(sshFront.port) } : {}),
    };
    // The processes on each row's path whose CPU is counted (besides the load generator): name -> CPU seconds so far.
    const onPath = (name: string): Record<string, () => number> => {
      const pid = (p: number) => () => cpuSeconds(p);
      const m: Record<string, () => number> = { backend: pid(backend.part.pid) };
      if (name === "B" || name === "C") m.nginx = pid(nginx.pid);
      if (name === "F") Object.assign(m, { gateway: pid(floor[0]!.pid), cp: pid(floor[1]!.pid) });
      if (name === "F1") Object.assign(m, { gateway: pid(floorH1[0]!.pid), cp: pid(floorH1[1]!.pid) });
      if (name === "D" || name === "E") Object.assign(m, { gateway: pid(gateway.pid), cp: pid(cp.pid), ...(name === "E" ? { squid: pid(squid.pid) } : {}) });
      if (name === "G") Object.assign(m, { nginx: pid(twoHop!.front.pid), nginx2: pid(twoHop!.inner.pid) });
      if (name === "H") Object.assign(m, { nginx: pid(sshFront!.pid), sshd: () => treeCpuSeconds(ssh!.sshd.pid), ssh: pid(ssh!.ssh.pid) });
      return m;
    };
    /** The connection point part again, its tunnel through Squid (`squidPort`) or direct (null). */
    const restartCp = async (squidPort: number | null): Promise<void> => {
      await cp.stop();
      await waitUntil("the gateway to see the tunnel gone", async () => !(await gateway.ready()));
      cp = (await Part.start("cp", setupFile, squidPort === null ? "" : String(squidPort))).part;
      await waitUntil(squidPort === null ? "the gateway's direct tunnel" : "the tunnel through Squid", () => gateway.ready());
    };
    const results: Record<string, RowResult> = {};
    /** Every repetition's result per row; `results` gets their medians. */
    const runs: Record<string, RowResult[]> = {};
    const cpuLines: string[] = [];
    const idle: IdleStep[] = [];

    /** One row: req/s with the CPU of every process on the path, latency, one large download. */
    const measure = async (name: string, t: Target, cpu: Record<string, () => number>): Promise<void> => {
      process.stderr.write(`${name}: rps...`);
      // CPU per request of every process on the path, over the timed part of the rps run.
      let before: Record<string, number> = {};
      const snapshot = (): void => void (before = Object.fromEntries(Object.entries(cpu).map(([k, read]) => [k, read()])));
      const used = (k: string): number => cpu[k]!() - before[k]!;
      const rps = await load({ kind: "rps", target: t, n, conc, rate, bytes }, snapshot);
      const cpuUs: Record<string, number> = { load: rps.cpuUs ?? NaN };
      for (const k of Object.keys(cpu)) cpuUs[k] = (used(k) * 1e6) / n;
      process.stderr.write(` latency...`);
      const lat = await load({ kind: "latency", target: t, n: latN, conc, rate, bytes });
      process.stderr.write(` download...\n`);
      const dl = await load({ kind: "download", target: t, n: 1, conc, rate, bytes }, snapshot);
      const cpuMsPerMB: Record<string, number> = { load: (dl.cpuUs ?? NaN) / 1000 };
      for (const k of Object.keys(cpu)) cpuMsPerMB[k] = (used(k) * 1e3) / (bytes / 1e6);
      (runs[name] ??= []).push({ rps, lat, dl, cpuUs, cpuMsPerMB, load: loadavg() });
      // Each row as it ends, so a run stopped early still shows what it measured.
      const total = Object.values(cpuUs).reduce((a, b) => a + b, 0);
      process.stderr.write(`${name}${repeat > 1 ? ` (${runs[name]!.length}/${repeat})` : ""}: ${rps.rps?.toFixed(0)} req/s, p50 ${lat.p50Ms?.toFixed(3)} ms, p99 ${lat.p99Ms?.toFixed(3)} ms, ${dl.mbPerS?.toFixed(0)} MB/s, CPU ${total.toFixed(0)} us/req, errors ${rps.errors + lat.errors} ${JSON.stringify({ ...rps.errorsBy, ...Object.fromEntries(Object.entries(lat.errorsBy).map(([k, v]) => [`${k} (latency)`, v])) })}, load ${loadavg().map((x) => x.toFixed(2)).join(" ")}\n`);
    };

    for (let r = 0; r < repeat; r++) {
      for (const name of ROWS.filter((x) => only.has(x))) {
        // Same instance and backend; only the connection point's tunnel now goes through Squid.
        if (name === "E") await restartCp(squid.port);
        await measure(name, targets[name]!, onPath(name));
      }
      // The next repetition's D goes on a direct tunnel again.
      if (only.has("E") && r < repeat - 1) await restartCp(null);

      // Row D per worker count, each a real `gateway serve --workers N` with a connection point of its own.
      for (const w of workerCounts) {
        const name = `Dw${w}`;
        const served = await startServedGateway(setup, w);
        const servedCp = (await Part.start("cp", served.setupFile, "")).part;
        try {
          await waitUntil(`tunnels to each of the ${w} workers`, async () => (await served.tunnelsPerWorker()).every((n) => n > 0));
          const pids = served.workerPids();
          // With one worker the instance is a single process (no primary).
          const processes: Record<string, () => number> = { [w === 1 ? "instance" : "primary"]: () => cpuSeconds(served.primaryPid), ...Object.fromEntries(pids.map((pid, i) => [`worker ${i}`, () => cpuSeconds(pid)])) };
          const at = Object.fromEntries(Object.entries(processes).map(([k, read]) => [k, read()]));
          const t0 = performance.now();
          await measure(name, { ...gw, origin: `https://127.0.0.1:${served.clientPort}` }, {
            backend: () => cpuSeconds(backend.part.pid),
            cp: () => cpuSeconds(servedCp.pid),
            gateway: () => Object.values(processes).reduce((a, read) => a + read(), 0),
          });
          const wall = (performance.now() - t0) / 1000;
          // Each process of the instance over the whole row (rps, latency and download): CPU seconds and the share of one core.
          const per = Object.entries(processes).map(([k, read]) => {
            const sec = read() - at[k]!;
            return `${k} (pid ${!k.startsWith("worker") ? served.primaryPid : pids[Number(k.split(" ")[1])]}) ${sec.toFixed(2)} s = ${((sec / wall) * 100).toFixed(0)}%`;
          });
          process.stderr.write(`${name}: CPU per process of the instance over ${wall.toFixed(1)} s: ${per.join(", ")}\n`);
          cpuLines.push(`${name}${repeat > 1 ? ` (${r + 1}/${repeat})` : ""}: ${per.join(", ")} (over ${wall.toFixed(1)} s)`);
        } finally {
          await servedCp.stop();
          await served.stop();
        }
      }
    }
    for (const [name, rs] of Object.entries(runs)) results[name] = medianRow(rs);

    // Idle authenticated connections last, in the gateway process alone (its heap already warmed by the load).
    if (idleSteps.length > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      const base = (await gateway.ask("rss")).rssMiB;
      idle.push({ conns: 0, open: 0, failed: 0, rssMiB: base, perConnKiB: 0 });
      const holders: { release(): Promise<void> }[] = [];
      let open = 0;
      let failed = 0;
      const PER_CHILD = 2500;
      for (const target of idleSteps) {
        while (open + failed < target) {
          const k = Math.min(PER_CHILD, target - open - failed);
          process.stderr.write(`idle: opening ${k} (held ${open})\n`);
          const h = await holdIdle(gw, k);
          holders.push(h);
          open += h.open;
          failed += h.failed;
        }
        await new Promise((r) => setTimeout(r, 1000));
        const rss = (await gateway.ask("rss")).rssMiB;
        idle.push({ conns: target, open, failed, rssMiB: rss, perConnKiB: ((rss - base) * 1024) / Math.max(1, open) });
      }
      await Promise.all(holders.map((h) => h.release()));
    }
    await stopAll(stops);
    console.log(report({ n, conc, rate, latN, bytes, ids: idCount, loadAtStart }, results, idle));
    if (repeat > 1) console.log(["", ...spreadLines(runs)].join("\n"));
    if (cpuLines.length > 0) console.log(["", "CPU of each process of the served instance (whole row: rps, latency, download; % of one core)", ...cpuLines].join("\n"));
  } finally {
    await stopAll(stops);
    rmSync(dir, { recursive: true, force: true });
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
