/** The table bench/gateway.ts prints. */
import { SMALL, type LoadResult } from "./load.ts";

export interface RowResult {
  rps: LoadResult;
  lat: LoadResult;
  dl: LoadResult;
  /** CPU microseconds per small request, per process on the path. */
  cpuUs: Record<string, number>;
  /** CPU milliseconds per MB of the large download, per process on the path. */
  cpuMsPerMB: Record<string, number>;
  /** The machine's load average (1, 5, 15 min) when the row ended. */
  load: number[];
}

export interface IdleStep {
  conns: number;
  open: number;
  failed: number;
  rssMiB: number;
  perConnKiB: number;
}

export function report(p: { n: number; conc: number; rate: number; latN: number; bytes: number; ids: number; loadAtStart: number[] }, results: Record<string, RowResult>, idle: IdleStep[]): string {
  const f = (x: number | undefined, d = 0): string => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  const lines: string[] = [];
  const la = (l: number[]): string => l.map((x) => x.toFixed(2)).join(" ");
  lines.push(`Gateway benchmark: ${p.n} requests of ${SMALL} B at ${p.conc} connections from ${p.ids} client identities; latency at ${p.rate} req/s x ${p.latN}; download ${p.bytes / 1024 / 1024} MiB`);
  lines.push("A direct (HTTP) | B nginx one hop (HTTP) | C nginx one hop (mTLS) | D gateway+tunnel+connection point (mTLS) | E = D, tunnel via Squid");
  lines.push("F = D's topology as a bare Node relay (bench/floor-relay.ts): Node's own floor for D | F1 = F with a pool of reverse HTTP/1.1 connections as the tunnel");
  lines.push("G = D's two hops built from nginx (mTLS, then TLS to a second nginx) | H = nginx (mTLS) in front of an OpenSSH reverse tunnel (ssh -R)");
  lines.push("Each part in its own process; load generator: undici, HTTP/1.1, in child processes.");
  lines.push(`Machine load average (1 5 15 min) at the start: ${la(p.loadAtStart)}`);
  lines.push("");
  lines.push(`${"path".padEnd(6)}${"req/s".padStart(10)}${"errors".padStart(8)}${"p50 ms".padStart(10)}${"p99 ms".padStart(10)}${"MB/s".padStart(10)}   load at row end   errors by status`);
  for (const [k, r] of Object.entries(results)) {
    const by = [...Object.entries(r.rps.errorsBy), ...Object.entries(r.lat.errorsBy).map(([s, v]) => [`${s} (latency)`, v] as const)].map(([s, v]) => `${s}: ${v}`).join(", ");
    lines.push(`${k.padEnd(6)}${f(r.rps.rps).padStart(10)}${String(r.rps.errors + r.lat.errors).padStart(8)}${f(r.lat.p50Ms, 3).padStart(10)}${f(r.lat.p99Ms, 3).padStart(10)}${f(r.dl.mbPerS).padStart(10)}   ${la(r.load).padEnd(16)}  ${by || "none"}`);
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
    void lines.push(`${`${a}/${b}`.padEnd(6)}${R(a, b, "rps").padStart(13)}${R(a, b, "mbPerS").padStart(12)}${addP50(a, b).padStart(14)}   ${goal}`.trimEnd());
  ratio("D", "A", ">=0.5 small, >=0.8 large, <=1 ms");
  ratio("D", "B");
  ratio("D", "C");
  ratio("D", "G", "(G: two C-speed hops, the limit for D)");
  ratio("D", "H", "(H: the hand-built nginx + ssh -R alternative)");
  ratio("C", "A");
  ratio("E", "D");
  ratio("D", "F");
  ratio("D", "F1");
  ratio("F1", "F");
  ratio("F", "A");

  // The columns A-F always had; the ones only G and H use appear when those rows ran.
  const extra = ["nginx2", "sshd", "ssh"].filter((p) => Object.values(results).some((r) => p in r.cpuUs));
  const parts = ["load", "nginx", ...extra.filter((p) => p === "nginx2"), "gateway", "cp", "squid", ...extra.filter((p) => p !== "nginx2"), "backend"];
  const cpuTable = (title: string, pick: (r: RowResult) => Record<string, number>, d: number): void => {
    lines.push("");
    lines.push(title);
    lines.push(`${"path".padEnd(6)}${parts.map((p) => p.padStart(9)).join("")}${"total".padStart(9)}`);
    for (const [k, r] of Object.entries(results)) {
      const sum = Object.values(pick(r)).reduce((a, b) => a + b, 0);
      lines.push(`${k.padEnd(6)}${parts.map((p) => f(pick(r)[p], d).padStart(9)).join("")}${f(sum, d).padStart(9)}`);
    }
  };
  cpuTable("CPU per small request, microseconds (user + system from /proc, timed part of the rps run; 10 ms clock ticks)", (r) => r.cpuUs, 0);
  cpuTable("CPU per MB of the large download, milliseconds (same method)", (r) => r.cpuMsPerMB, 2);
  // The relay's own processes (gateway instance + connection point): what the floors and D compare on.
  const relayUs = (k: string): number => (results[k]?.cpuUs.gateway ?? NaN) + (results[k]?.cpuUs.cp ?? NaN);
  const relayed = ["D", "E", "F", "F1"].filter((k) => k in results);
  if (relayed.length > 0) {
    lines.push("");
    lines.push(`gateway + cp CPU per small request, us: ${relayed.map((k) => `${k} ${f(relayUs(k))}`).join(", ")}`);
    const rel = [["F1", "F"], ["D", "F"], ["D", "F1"]].filter(([a, b]) => a! in results && b! in results);
    if (rel.length > 0) lines.push(`  ratios: ${rel.map(([a, b]) => `${a}/${b} ${f(relayUs(a!) / relayUs(b!), 2)}`).join(", ")}`);
  }
  // CPU per request x requests per second: how busy each process was. A process near 100% is what
  // limits the row; when none is, the machine is (its load average says how busy it was).
  lines.push("");
  lines.push("Share of one core during the timed rps run (CPU per request x req/s); none near 100%: the machine limits the row");
  lines.push(`${"path".padEnd(6)}${parts.map((p) => p.padStart(9)).join("")}   busiest`);
  for (const [k, r] of Object.entries(results)) {
    const share = (p: string): number | undefined => (r.cpuUs[p] === undefined ? undefined : (r.cpuUs[p]! * (r.rps.rps ?? NaN)) / 1e4);
    const busiest = Object.keys(r.cpuUs).reduce((a, b) => ((share(b) ?? 0) > (share(a) ?? 0) ? b : a));
    lines.push(`${k.padEnd(6)}${parts.map((p) => (share(p) === undefined ? "-" : `${f(share(p))}%`).padStart(9)).join("")}   ${busiest} ${f(share(busiest))}% (load ${la(r.load)})`);
  }
  if (extra.length > 0) lines.push("nginx = the front nginx (B, C, G, H); nginx2 = G's inner nginx; sshd = the sshd and its session processes; ssh = the ssh -R client");

  if (idle.length > 0) {
    lines.push("");
    lines.push("Idle authenticated client connections (RSS of the gateway instance's process alone, after GC)");
    lines.push(`${"target".padEnd(8)}${"open".padStart(8)}${"failed".padStart(8)}${"RSS MiB".padStart(10)}${"KiB/conn".padStart(10)}   goal <= 64 KiB/conn at 15,000`);
    for (const r of idle) lines.push(`${String(r.conns).padEnd(8)}${String(r.open).padStart(8)}${String(r.failed).padStart(8)}${f(r.rssMiB, 1).padStart(10)}${(r.conns ? f(r.perConnKiB, 1) : "-").padStart(10)}`);
  }
  return lines.join("\n");
}
