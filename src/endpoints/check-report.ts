/**
 * What the connectivity checker reports: the stages, one result per target, the summary of a run,
 * and how a run reads in a log line.
 */
import type { Hop, NetCode } from "../errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import type { Scheme } from "./catalog.ts";

export const CHECK_STAGES = ["dns", "proxy", "connect", "tls", "http"] as const;
export type CheckStage = (typeof CHECK_STAGES)[number];
export type CheckResultKind = "pass" | "fail" | "warn" | "not-testable" | "skipped";

export interface StageOutcome {
  stage: CheckStage;
  result: "pass" | "fail" | "warn" | "skipped";
  ms: number;
  detail: string;
}

export interface CheckResult {
  url: string;
  address: string;
  endpointIds: string[];
  host: string;
  port: number;
  scheme: Scheme;
  required: boolean;
  result: CheckResultKind;
  /** The stage that decided: the failing one, `http` for a pass or warn, null when nothing ran. */
  stage: CheckStage | null;
  /** SPEC error code of a failure (12002, 12007, 12029, 12030, 12175, 407), else null. */
  code: NetCode | null;
  /** Which hop failed (the proxy or the target), null unless failed. */
  hop: Hop | null;
  /** The HEAD answer's status, when there was one. */
  httpStatus: number | null;
  /** Time spent on this target, all stages. */
  ms: number;
  message: string;
  stages: StageOutcome[];
}

export interface CheckSummary {
  total: number;
  pass: number;
  fail: number;
  warn: number;
  notTestable: number;
  skipped: number;
  /** Required targets that were tried and did not pass (fail or warn). */
  requiredNotPassed: number;
}

export interface CheckReport {
  /** `direct` or `proxy host:port as user` (never the password). */
  route: string;
  startedAt: string;
  ms: number;
  concurrency: number;
  stageTimeoutMs: number;
  /** True when every required target that could be tried passed (see `isRequiredOk`). */
  ok: boolean;
  /** The run was stopped before every target was tried (those are `skipped`). */
  aborted: boolean;
  summary: CheckSummary;
  results: CheckResult[];
}

/**
 * Required targets that were tried all passed. Untestable wildcards and skipped entries are not
 * counted (nothing was tried: the summary says how many there are); a `warn` is not a pass.
 */
export function isRequiredOk(results: readonly CheckResult[]): boolean {
  return results.every((r) => !r.required || r.result === "pass" || r.result === "not-testable" || r.result === "skipped");
}

export function summarize(results: readonly CheckResult[]): CheckSummary {
  const count = (k: CheckResultKind): number => results.filter((r) => r.result === k).length;
  return {
    total: results.length,
    pass: count("pass"),
    fail: count("fail"),
    warn: count("warn"),
    notTestable: count("not-testable"),
    skipped: count("skipped"),
    requiredNotPassed: results.filter((r) => r.required && (r.result === "fail" || r.result === "warn")).length,
  };
}

/** `12 passed, 1 failed, 2 not testable (wildcards) of 15; every required endpoint passed`. */
export function summaryLine(report: Pick<CheckReport, "summary" | "ok" | "aborted">): string {
  const s = report.summary;
  const parts = [`${s.pass} passed`, `${s.fail} failed`];
  if (s.warn) parts.push(`${s.warn} warned`);
  if (s.notTestable) parts.push(`${s.notTestable} not testable (wildcards)`);
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  const verdict = report.aborted
    ? "the check was stopped before the end"
    : report.ok
      ? "every required endpoint that could be tried passed"
      : `${s.requiredNotPassed} required endpoint(s) did not pass`;
  return `${parts.join(", ")} of ${s.total}; ${verdict}`;
}

/** One line per finished target: errors for failures, warnings for warns, the rest as information. */
export function logResult(log: ComponentLog, r: CheckResult): void {
  const fields = { url: r.url, result: r.result, stage: r.stage, code: r.code, ms: r.ms };
  if (r.result === "fail") log.error(`${r.url}: failed at the ${r.stage} stage, error ${r.code}: ${r.message}`, fields);
  else if (r.result === "warn") log.warn(`${r.url}: ${r.message}`, fields);
  else log.info(`${r.url}: ${r.result} (${r.ms} ms)${r.result === "pass" ? "" : `: ${r.message}`}`, fields);
}
