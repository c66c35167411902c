/**
 * Edge benchmark (issue 11): what attacks on the Internet-facing side cost a gateway instance and
 * the devices it serves, in one run against one backend, gateway instance and connection point.
 *
 * For each attack: the gateway instance process's RSS before (after GC) and at its peak during the
 * attack (sampled from /proc), and the p50/p99 of a legitimate client (valid certificate, small
 * requests at a fixed rate, open loop) during the attack, against the same client on the same
 * instance and connections just before the attack (measured per row: on a shared machine the
 * background load drifts too much for one baseline at the start).
 *
 *   rapid-reset   HTTP/2 streams opened and cancelled at once (valid certificate), a few
 *                 connections, against a route answering 1 MiB
 *   slow-client   slowloris on the client listener: many TLS connections sending headers byte by byte
 *   slow-tunnel   slowloris on the tunnel listener: idle TCP connections that never start TLS
 *   tunnel-flood  hundreds of idle TCP connections on the tunnel port while the connection point
 *                 is restarted: how long until it is connected again (also measured without attack)
 *   upload        chunked uploads going on past the body limit (valid certificate)
 * The registration flood is the management point's concern and is not here.
 *
 * The attacker is another device and another source: its own client certificate (issued like the
 * legitimate client's) and connections from another loopback address (--attacker-address), so
 * the gateway's per-identity and per-address fair shares are what is measured. It runs at the
 * lowest CPU priority (--attacker-nice): on this one machine its own CPU would otherwise be taken
 * from the product and the legitimate client, which no gateway can give back (its CPU% is shown).
 * `--attacker-cert legit` makes it use the legitimate client's certificate instead (a stolen one).
 *
 * Each attack gets a fresh gateway instance and connection point, so one attack's aftermath does
 * not weigh on the next. Every part runs in its own process: the backend, gateway instance and
 * connection point are bench/gateway.ts's parts; the legitimate client is bench/edge/legit.ts; each
 * attacker is bench/edge/attack.ts. The attackers stop when the measurement is done or at their
 * bound (--attack-s), whichever comes first; every wait is bounded, and the run ends by itself.
 *
 *   npx tsx bench/edge.ts [--attack-s 30] [--legit-s 8] [--rate 50] [--legit-timeout-s 10]
 *                         [--rr-conns 4] [--slow-conns 1000]
 *                         [--tunnel-conns 1000] [--flood-conns 500] [--upload-conns 4]
 *                         [--body-limit-mib 0] [--only rapid-reset,slow-client,slow-tunnel,tunnel-flood,upload]
 *                         [--attacker-address 127.0.0.2] [--attacker-nice 19] [--attacker-cert own|legit]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROLES, startCrlServer } from "../test/helpers/cmg-harness.ts";
import { makeTestPki } from "../test/helpers/pki-fixtures.ts";
import { freePort } from "../test/helpers/ports.ts";
import { issueCert } from "../src/pki/issue.ts";
import { DEFAULT_LIMITS } from "../src/gateway/config.ts";
import { arg, Child, cpuSeconds, waitUntil } from "./lib/child.ts";
import { Part } from "./gateway/harness.ts";
import { SERVERNAME, type Target } from "./gateway/load.ts";
import type { Setup } from "./gateway/parts.ts";
import { siteSigned } from "../test/helpers/settings-signer.ts";
import type { AttackJob } from "./edge/attack.ts";
import type { LegitJob, LegitResult } from "./edge/legit.ts";

const ATTACKS = ["rapid-reset", "slow-client", "slow-tunnel", "tunnel-flood", "upload"] as const;
type Attack = (typeof ATTACKS)[number];
const ATTACKER = join(import.meta.dirname, "edge", "attack.ts");
const LEGIT = join(import.meta.dirname, "edge", "legit.ts");
const MiB = 1024 * 1024;

interface Row {
  name: string;
  rssIdle: number;
  rssPeak: number;
  rssAfter: number;
  /** The legitimate client just before the attack (same instance, same connections), and during it. */
  without: LegitResult | null;
  legit: LegitResult | null;
  reconnect?: { fromReadyS: number; fromSpawnS: number } | null;
  reconnectWithout?: { fromReadyS: number; fromSpawnS: number } | null;
  attack: Record<string, number>;
  gatewayAlive: boolean;
  /** CPU use during the attack (user + system over wall time, %; 100 = one core): gateway instance, connection point, attacker. */
  cpuPct: { gateway: number; cp: number; attacker: number };
  note?: string;
}

/** The gateway instance's resident memory now, MiB (no GC: what the machine sees). */
function vmRssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples `pid`'s RSS every 200 ms until stopped; returns the peak. */
function rssSampler(pid: number): { stop(): number } {
  let peak = vmRssMiB(pid);
  const t = setInterval(() => {
    const v = vmRssMiB(pid);
    if (v > peak) peak = v;
  }, 200);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, vmRssMiB(pid) || 0);
    },
  };
}

/** An attacker child: resolves once it has ramped up; `stop` ends it and returns its counters. */
async function startAttack(job: AttackJob): Promise<{ pid: number; started: Record<string, number>; stop(): Promise<Record<string, number>> }> {
  const c = Child.node(ATTACKER, [JSON.stringify(job)], { name: `attack ${job.kind}`, stdin: "pipe", nodeArgs: ["--max-old-space-size=1024"] });
  const first = await c.waitForLine(/^started /, { timeoutMs: 60_000 });
  return {
    pid: c.pid,
    started: JSON.parse(first.slice("started ".length)) as Record<string, number>,
    async stop() {
      c.endInput();
      const line = await c.line(30_000).catch(() => "{}");
      await c.stop({ ask: () => {}, graceMs: 10_000 });
      try {
        return JSON.parse(line) as Record<string, number>;
      } catch {
        return {};
      }
    },
  };
}

/** The legitimate client's child, warmed up: each `run` is one timed measurement (bounded); `stop` ends it. */
async function startLegit(job: LegitJob): Promise<{ run(): Promise<LegitResult>; stop(): Promise<void> }> {
  const c = Child.node(LEGIT, [JSON.stringify(job)], { name: "legitimate client", stdin: "pipe", stderr: "pipe" });
  await c.waitForLine(/^warm/, { timeoutMs: 60_000 });
  return {
    async run() {
      c.write("go\n");
      return JSON.parse(await c.line((job.seconds + job.timeoutMs / 1000 + 30) * 1000)) as LegitResult;
    },
    async stop() {
      c.endInput();
      await c.stop({ ask: () => {}, graceMs: 5000 });
    },
  };
}

async function main(): Promise<void> {
  const attackS = Number(arg("attack-s", "30"));
  const legitTimeoutS = Number(arg("legit-timeout-s", "10"));
  const legitS = Number(arg("legit-s", "8"));
  const rate = Number(arg("rate", "50"));
  const rrConns = Number(arg("rr-conns", "4"));
  const slowConns = Number(arg("slow-conns", "1000"));
  const tunnelConns = Number(arg("tunnel-conns", "1000"));
  const floodConns = Number(arg("flood-conns", "500"));
  const uploadConns = Number(arg("upload-conns", "4"));
  const bodyLimitMiB = Number(arg("body-limit-mib", "0"));
  const only = new Set(arg("only", ATTACKS.join(",")).split(","));
  const attackerAddress = arg("attacker-address", "127.0.0.2");
  const attackerNice = Number(arg("attacker-nice", "19"));
  const attackerCert = arg("attacker-cert", "own");
  if (attackerCert !== "own" && attackerCert !== "legit") throw new Error("--attacker-cert: own or legit");
  const bodyLimit = bodyLimitMiB > 0 ? bodyLimitMiB * MiB : DEFAULT_LIMITS.maxRequestBodyBytes.mp;
  if (legitS + legitTimeoutS + 5 > attackS) process.stderr.write(`note: --attack-s ${attackS} may end an attack before the legitimate client (${legitS} s + up to ${legitTimeoutS} s for its last requests) is done\n`);

  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-edge-"));
  const stops: (() => Promise<void>)[] = [];
  const rows: Row[] = [];
  try {
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
      // The product's limits, but for the body limit when --body-limit-mib is given.
      gateway: {
        clientPort: await freePort(),
        tunnelPort: await freePort(),
        idleTimeoutMs: DEFAULT_LIMITS.idleTimeoutMs,
        ...(bodyLimitMiB > 0 ? { limits: { maxRequestBodyBytes: { mp: bodyLimit } } } : {}),
      },
      floor: { cert: "", key: "", clientCa: [], clientPort: 0, tunnelPort: 0, backendUrl, tunnels: 0, h1: { clientPort: 0, tunnelPort: 0, connections: 0 } },
    };
    const setupFile = join(dir, "setup.json");
    writeFileSync(setupFile, JSON.stringify(setup), { mode: 0o600 });
    let gateway: Part | null = null;
    let cp: Part | null = null;
    stops.push(async () => void (await Promise.all([gateway?.stop(), cp?.stop()])));
    /** A fresh gateway instance and connection point for each row: one attack's aftermath does not weigh on the next. */
    const freshParts = async (): Promise<Part> => {
      await cp?.stop();
      await gateway?.stop();
      gateway = (await Part.start("gateway", setupFile)).part;
      cp = (await Part.start("cp", setupFile, "")).part;
      const g = gateway;
      await waitUntil("the gateway's first tunnel", () => g.ready(), 60_000);
      return g;
    };

    const mtls = { ca: pki.root.certPem, cert: pki.client.certPem, key: pki.client.keyPem };
    // Another device's certificate, issued as the legitimate client's was (same CA, same CRL).
    const attackerDevice = await issueCert({ issuer: pki.intermediate, commonName: "PC-ATTACKER", usage: "client", ...(pki.crlUrls.intermediate ? { crlUrl: pki.crlUrls.intermediate } : {}) });
    const attackerTls = attackerCert === "legit" ? mtls : { ca: pki.root.certPem, cert: attackerDevice.certPem, key: attackerDevice.keyPem };
    const from = { localAddress: attackerAddress, nice: attackerNice };
    const prefix = `/CCM_Proxy_MutualAuth/${ROLES.mp}`;
    const legitTarget: Target = { origin: `https://127.0.0.1:${setup.gateway.clientPort}`, prefix, tls: { ca: mtls.ca, ids: [{ cert: mtls.cert, key: mtls.key }] } };
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 2000));
    const gcRss = async (g: Part): Promise<number> => (g.child.alive ? (await g.ask("rss")).rssMiB : NaN);

    /** Stops the connection point, starts a new one, and times until the gateway has a tunnel again. */
    const restartCp = async (g: Part): Promise<{ fromReadyS: number; fromSpawnS: number }> => {
      await cp!.stop();
      await waitUntil("the gateway to see the tunnel gone", async () => !(await g.ready()), 30_000);
      const t0 = performance.now();
      cp = (await Part.start("cp", setupFile, "")).part;
      const t1 = performance.now();
      await waitUntil("the restarted connection point's tunnel", () => g.ready(), 60_000);
      const t2 = performance.now();
      return { fromReadyS: (t2 - t1) / 1000, fromSpawnS: (t2 - t0) / 1000 };
    };

    const jobs: Record<Attack, () => AttackJob> = {
      "rapid-reset": () => ({ kind: "rapid-reset", port: setup.gateway.clientPort, conns: rrConns, maxMs: attackS * 1000, path: `${prefix}/bytes/${MiB}`, tls: attackerTls, ...from }),
      "slow-client": () => ({ kind: "slow-headers", port: setup.gateway.clientPort, conns: slowConns, maxMs: attackS * 1000, path: `${prefix}/bytes/10`, tls: attackerTls, byteEveryMs: 1000, ...from }),
      "slow-tunnel": () => ({ kind: "idle-tcp", port: setup.gateway.tunnelPort, conns: tunnelConns, maxMs: attackS * 1000, ...from }),
      "tunnel-flood": () => ({ kind: "idle-tcp", port: setup.gateway.tunnelPort, conns: floodConns, maxMs: attackS * 1000, ...from }),
      upload: () => ({ kind: "upload", port: setup.gateway.clientPort, conns: uploadConns, maxMs: attackS * 1000, path: `${prefix}/echo`, tls: attackerTls, capBytes: bodyLimit + 16 * MiB, ...from }),
    };

    for (const name of ATTACKS.filter((a) => only.has(a))) {
      const g = await freshParts();
      await settle();
      const rssIdle = await gcRss(g);
      process.stderr.write(`${name}: idle RSS ${rssIdle.toFixed(1)} MiB; legitimate client without attack...\n`);
      let note: string | undefined;
      const addNote = (x: string): void => void (note = note ? `${note}; ${x}` : x);
      const client = await startLegit({ target: legitTarget, rate, seconds: legitS, timeoutMs: legitTimeoutS * 1000 });
      try {
        const without = await client.run().catch((e: unknown) => (addNote(`legitimate client failed without attack: ${(e as Error).message.split("\n")[0]}`), null));
        let reconnectWithout: Row["reconnect"];
        if (name === "tunnel-flood") {
          process.stderr.write(`${name}: restarting the connection point without attack...\n`);
          reconnectWithout = await restartCp(g).catch((e: unknown) => (addNote((e as Error).message), null));
        }
        const sampler = rssSampler(g.pid);
        const tAttack = performance.now();
        const cpu0 = { gateway: cpuSeconds(g.pid), cp: cpuSeconds(cp!.pid) };
        const a = await startAttack(jobs[name]());
        const attackerCpu0 = cpuSeconds(a.pid);
        const tAttacker = performance.now();
        process.stderr.write(`${name}: attack ramped up ${JSON.stringify(a.started)}; legitimate client during the attack...\n`);
        const during = await client.run().catch((e: unknown) => (addNote(`legitimate client failed: ${(e as Error).message.split("\n")[0]}`), null));
        const legitEndS = (performance.now() - tAttack) / 1000;
        if (legitEndS > attackS) addNote(`the attack's bound (${attackS} s) passed before the legitimate client was done (${legitEndS.toFixed(1)} s): raise --attack-s`);
        let reconnect: Row["reconnect"];
        if (name === "tunnel-flood") {
          process.stderr.write(`${name}: restarting the connection point under the flood...\n`);
          reconnect = await restartCp(g).catch((e: unknown) => (addNote((e as Error).message), null));
          if (performance.now() - tAttack > attackS * 1000)
            addNote(`the flood reached its bound (${attackS} s) before the connection point was connected again: it may have connected only once the flood ended`);
        }
        const wallS = (performance.now() - tAttack) / 1000;
        const cpuOf = (pid: number, before: number): number => {
          try {
            return ((cpuSeconds(pid) - before) * 100) / wallS;
          } catch {
            return NaN; // exited meanwhile
          }
        };
        // The connection point restarted under the flood is a new process: its share is left out.
        let attackerPct = NaN;
        try {
          attackerPct = ((cpuSeconds(a.pid) - attackerCpu0) * 100 * 1000) / (performance.now() - tAttacker);
        } catch {
          // the attacker ended at its bound
        }
        const cpuPct = { gateway: cpuOf(g.pid, cpu0.gateway), cp: name === "tunnel-flood" ? NaN : cpuOf(cp!.pid, cpu0.cp), attacker: attackerPct };
        const counters = await a.stop();
        const rssPeak = sampler.stop();
        await settle();
        const row: Row = {
          name,
          rssIdle,
          rssPeak,
          rssAfter: await gcRss(g),
          without,
          legit: during,
          attack: counters,
          gatewayAlive: g.child.alive,
          cpuPct,
          ...(reconnect !== undefined ? { reconnect, reconnectWithout: reconnectWithout ?? null } : {}),
          ...(note ? { note } : {}),
        };
        rows.push(row);
        process.stderr.write(`${name}: peak RSS ${rssPeak.toFixed(1)} MiB; legitimate without ${JSON.stringify(without)}, during ${JSON.stringify(during)}; attacker ${JSON.stringify(counters)}${note ? `; ${note}` : ""}\n`);
      } finally {
        await client.stop();
      }
    }
    await stopAll(stops);
    console.log(report({ attackS, legitS, legitTimeoutS, rate, bodyLimit, rrConns, slowConns, tunnelConns, floodConns, uploadConns, attackerNice }, rows, { attackerAddress, attackerCert }));
  } finally {
    await stopAll(stops);
    rmSync(dir, { recursive: true, force: true });
  }
}

const failed = (l: LegitResult): number => l.errors + l.timeouts;

function report(p: Record<string, number>, rows: Row[], who: { attackerAddress: string; attackerCert: string }): string {
  const f = (x: number | null | undefined, d = 1): string => (x === undefined || x === null || Number.isNaN(x) ? "-" : x.toFixed(d));
  const ratio = (a: number | null | undefined, b: number | null | undefined): number => (a ?? NaN) / (b ?? NaN);
  const rc = (x: Row["reconnect"]): string => (x ? `${f(x.fromReadyS, 2)} (${f(x.fromSpawnS, 1)})` : "-");
  const out: string[] = [];
  out.push(
    `Edge benchmark: legitimate client ${p.rate} req/s x ${p.legitS} s (100 B, HTTP/1.1, client certificate, 16 connections, open loop, ${p.legitTimeoutS} s timeout); attacks bounded at ${p.attackS} s each;`,
  );
  out.push(
    `rapid reset ${p.rrConns} connections (1 MiB route); slowloris ${p.slowConns} client / ${p.tunnelConns} tunnel connections; flood ${p.floodConns} connections; ${p.uploadConns} chunked uploads of up to ${(p.bodyLimit! / MiB + 16).toFixed(0)} MiB (body limit ${(p.bodyLimit! / MiB).toFixed(0)} MiB).`,
  );
  out.push("Each attack against a fresh gateway instance and connection point; \"without\" = the same client on the same instance just before the attack.");
  out.push(
    `The attacker: ${who.attackerCert === "own" ? "another device (its own client certificate)" : "the legitimate client's own certificate"}, from ${who.attackerAddress} (the legitimate client: 127.0.0.1), at CPU priority nice ${p.attackerNice}.`,
  );
  out.push("RSS (MiB): the gateway instance's process; idle and after = after GC, peak = sampled every 200 ms during the attack (no GC).");
  out.push("Shared 2-core machine under other load: the attackers, the legitimate client and the product compete for the same CPUs; the figures are noisy.");
  out.push("");
  out.push(
    `${"attack".padEnd(13)}${"RSS idle".padStart(9)}${"peak".padStart(7)}${"delta".padStart(7)}${"after".padStart(7)}${"p50 w/o".padStart(9)}${"during".padStart(8)}${"p99 w/o".padStart(9)}${"during".padStart(8)}${"p99 x".padStart(7)}${"failed".padStart(9)}${"CPU% gw/cp/att".padStart(16)}${"reconnect s w/o | during".padStart(27)}`,
  );
  for (const r of rows) {
    out.push(
      `${r.name.padEnd(13)}${f(r.rssIdle).padStart(9)}${f(r.rssPeak).padStart(7)}${f(r.rssPeak - r.rssIdle).padStart(7)}${f(r.rssAfter).padStart(7)}` +
        `${f(r.without?.p50Ms).padStart(9)}${f(r.legit?.p50Ms).padStart(8)}${f(r.without?.p99Ms).padStart(9)}${f(r.legit?.p99Ms).padStart(8)}${f(ratio(r.legit?.p99Ms, r.without?.p99Ms), 2).padStart(7)}` +
        `${(r.legit ? `${failed(r.legit)}/${r.legit.sent}` : "-").padStart(9)}${`${f(r.cpuPct.gateway, 0)}/${f(r.cpuPct.cp, 0)}/${f(r.cpuPct.attacker, 0)}`.padStart(16)}${(r.reconnect !== undefined ? `${rc(r.reconnectWithout)} | ${rc(r.reconnect)}` : "-").padStart(27)}`,
    );
  }
  out.push("p50/p99 in ms over the answered requests; failed: requests during the attack that failed or timed out / sent.");
  out.push("CPU%: user + system over the attack's wall time (100 = one core), gateway instance / connection point (left out where it was restarted) / attacker process.");
  out.push("reconnect s: from the new connection point process being up to the gateway's first tunnel (in brackets: from its spawn, Node start included).");
  out.push("");
  out.push("Attackers (counters from their processes):");
  for (const r of rows) out.push(`  ${r.name.padEnd(13)} ${JSON.stringify(r.attack)}${r.gatewayAlive ? "" : "  GATEWAY INSTANCE DIED"}${r.note ? `  note: ${r.note}` : ""}`);
  out.push("");
  out.push("Goals: RSS under attack <= idle + 256 MiB; legitimate p99 under attack <= 3x without (and none failed); connection point reconnected within 5 s during the tunnel-port flood.");
  const verdict = (ok: boolean | null): string => (ok === null ? "n/a" : ok ? "met" : "MISSED");
  for (const r of rows) {
    const rssOk = Number.isNaN(r.rssPeak) ? null : r.gatewayAlive && r.rssPeak <= r.rssIdle + 256;
    const p99 = ratio(r.legit?.p99Ms, r.without?.p99Ms);
    const p99Ok = r.legit && r.without ? p99 <= 3 && failed(r.legit) === 0 : false;
    const p99Text = !r.legit ? "no result" : `${f(p99, 2)}x${failed(r.legit) ? `, ${failed(r.legit)} of ${r.legit.sent} failed${r.legit.firstError ? ` (${r.legit.firstError})` : ""}` : ""}`;
    const parts = [`RSS ${verdict(rssOk)} (+${f(r.rssPeak - r.rssIdle)} MiB)`, `p99 ${verdict(p99Ok)} (${p99Text})`];
    if (r.name === "tunnel-flood") parts.push(`reconnect ${verdict(r.reconnect ? r.reconnect.fromReadyS <= 5 : false)} (${r.reconnect ? `${f(r.reconnect.fromReadyS, 2)} s` : "none"})`);
    out.push(`  ${r.name.padEnd(13)} ${parts.join("; ")}`);
  }
  out.push("");
  out.push("Legitimate p99 under attack against the 3x goal:");
  let met = 0;
  for (const r of rows) {
    const p99 = ratio(r.legit?.p99Ms, r.without?.p99Ms);
    const ok = !!r.legit && !!r.without && p99 <= 3 && failed(r.legit) === 0;
    if (ok) met++;
    out.push(`  ${r.name.padEnd(13)} p99 without ${f(r.without?.p99Ms)} ms, with ${f(r.legit?.p99Ms)} ms: ${f(p99, 2)}x (goal <= 3x) ${ok ? "met" : "MISSED"}${r.legit && failed(r.legit) ? ` (${failed(r.legit)} failed)` : ""}`);
  }
  const worst = Math.max(...rows.map((r) => ratio(r.legit?.p99Ms, r.without?.p99Ms)).filter((x) => !Number.isNaN(x)));
  out.push(`Summary: p99 goal (<= 3x) met for ${met} of ${rows.length} attacks; worst ratio ${f(worst, 2)}x; ${met === rows.length ? "ALL MET" : "NOT ALL MET"}.`);
  return out.join("\n");
}

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
