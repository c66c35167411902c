import { ValidationError } from "./errors.ts";

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `500ms`, `30s`, `5m`, `24h`, `1d` (a bare number is seconds) -> milliseconds.
 *
 * @example
 * parseDuration("location-interval", "24h") // 86400000
 */
export function parseDuration(field: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  const ms = m ? Number(m[1]) * UNIT[m[2] ?? "s"]! : NaN;
  if (!m || !Number.isFinite(ms) || ms <= 0 || ms > 30 * UNIT.d!) {
    throw new ValidationError(field, "must be a duration such as 500ms, 30s, 5m, 24h (more than 0, at most 30d)", `${field}: must be a duration such as 500ms, 30s, 5m, 24h (more than 0, at most 30d) (got ${JSON.stringify(value)})`);
  }
  return Math.round(ms);
}

/**
 * Milliseconds -> the shortest exact form `parseDuration` reads back.
 *
 * @example
 * formatDuration(86_400_000) // "1d"
 */
export function formatDuration(ms: number): string {
  for (const u of ["d", "h", "m", "s"] as const) {
    const size = UNIT[u]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${u}`;
  }
  return `${ms}ms`;
}
