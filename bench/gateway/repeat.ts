/**
 * `bench/gateway.ts --repeat N`: every row measured N times, the rows interleaved (all rows, then
 * all rows again), so a slow minute of a shared machine falls on every row alike. The report
 * shows each figure's median over the repetitions; the spread of the figure the goals name (the
 * relay's CPU per small request) is printed beside it, with D/F per repetition.
 */
import type { LoadResult } from "./load.ts";
import type { RowResult } from "./report.ts";

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function medianLoad(rs: readonly LoadResult[]): LoadResult {
  const of = (k: "rps" | "cpuUs" | "p50Ms" | "p99Ms" | "mbPerS"): number | undefined => (rs.some((r) => r[k] !== undefined) ? median(rs.map((r) => r[k] ?? NaN)) : undefined);
  const errorsBy: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r.errorsBy)) errorsBy[k] = (errorsBy[k] ?? 0) + v;
  const out: LoadResult = { errors: rs.reduce((a, r) => a + r.errors, 0), errorsBy };
  for (const k of ["rps", "cpuUs", "p50Ms", "p99Ms", "mbPerS"] as const) {
    const v = of(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function medianRecord(rs: readonly Record<string, number>[]): Record<string, number> {
  const keys = new Set(rs.flatMap((r) => Object.keys(r)));
  return Object.fromEntries([...keys].map((k) => [k, median(rs.map((r) => r[k] ?? NaN))]));
}

/** One row's figures: each the median of its repetitions (errors: their sum; load: the last). */
export function medianRow(rs: readonly RowResult[]): RowResult {
  return {
    rps: medianLoad(rs.map((r) => r.rps)),
    lat: medianLoad(rs.map((r) => r.lat)),
    dl: medianLoad(rs.map((r) => r.dl)),
    cpuUs: medianRecord(rs.map((r) => r.cpuUs)),
    cpuMsPerMB: medianRecord(rs.map((r) => r.cpuMsPerMB)),
    load: rs.at(-1)!.load,
  };
}

/** Lines on the spread: gateway + connection point CPU per small request in each repetition, and D/F in each. */
export function spreadLines(runs: Readonly<Record<string, readonly RowResult[]>>): string[] {
  const relay = (r: RowResult): number => (r.cpuUs.gateway ?? NaN) + (r.cpuUs.cp ?? NaN);
  const rows = Object.keys(runs).filter((k) => runs[k]!.some((r) => Number.isFinite(relay(r))));
  const count = Math.max(0, ...Object.values(runs).map((r) => r.length));
  const lines = [`gateway + cp CPU per small request in each of the ${count} repetitions, us (the tables show the medians):`];
  for (const k of rows) {
    const v = runs[k]!.map(relay);
    lines.push(`  ${k.padEnd(4)} ${v.map((x) => x.toFixed(0).padStart(5)).join(" ")}   median ${median(v).toFixed(0)}, range ${Math.min(...v).toFixed(0)}-${Math.max(...v).toFixed(0)}`);
  }
  const d = runs.D;
  const f = runs.F;
  if (d && f) {
    const ratios = d.map((r, i) => (f[i] ? relay(r) / relay(f[i]!) : NaN));
    lines.push(`  D/F  ${ratios.map((x) => x.toFixed(2).padStart(5)).join(" ")}   median ${median(ratios).toFixed(2)} (D and F of the same repetition)`);
  }
  return lines;
}
