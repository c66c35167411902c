/**
 * The connectivity checker: can this server reach the endpoints of the catalog, through the path
 * its roles really use? Each target goes through stages, and the first one that fails decides:
 *
 *   dns      resolve the name (skipped through a proxy: the proxy resolves it, and its answer says so)
 *   proxy    the proxy itself: reachable, accepts our account (407 otherwise), lets us through
 *   connect  TCP to the target, or the proxy's CONNECT tunnel to it (Egress#connect: same proxy
 *            account, same code path as the roles)
 *   tls      handshake with the chain verified against the system's roots plus the extra CAs,
 *            and the certificate's names checked against the host
 *   http     a HEAD request over that same connection; a 4xx/5xx answer is a `warn` (the path
 *            works, the answer does not look right)
 *
 * `http:` targets through a proxy go as the roles send them: an absolute-form request to the
 * proxy (Egress#request), so proxy, connect and http are one step there and the proxy's error
 * page says which part failed.
 *
 * Results: `pass`, `fail` (stage + code from SPEC "Error codes"), `warn`, `not-testable` (a
 * wildcard with no known host to try) and `skipped` (not an internet endpoint, or the run was
 * stopped). Only a run that reached the end of the http stage is ever a `pass`.
 */
import { lookup as dnsLookup } from "node:dns";
import type { LookupFunction } from "node:net";
import { ValidationError } from "../errors.ts";
import type { Egress } from "../egress/egress.ts";
import { describeRoute } from "../egress/route.ts";
import { nullLog, type ComponentLog } from "../logs/cmtrace.ts";
import { checkOne } from "./check-one.ts";
import { isRequiredOk, logResult, summarize, summaryLine, type CheckReport, type CheckResult } from "./check-report.ts";
import type { CheckEnv } from "./check-stage.ts";
import type { CheckTarget } from "./check-targets.ts";
import { trustContext } from "./check-tls.ts";

export { CHECK_STAGES, isRequiredOk, summarize, summaryLine } from "./check-report.ts";
export type { CheckReport, CheckResult, CheckResultKind, CheckStage, CheckSummary, StageOutcome } from "./check-report.ts";
export { checkTargets, onPort } from "./check-targets.ts";
export type { CheckTarget, TargetOptions } from "./check-targets.ts";

/** How many targets the product checks at once. */
export const CHECK_CONCURRENCY = 16;
/** Default limit of each stage. */
export const STAGE_TIMEOUT_MS = 10_000;

export interface CheckerOptions {
  /** The outbound path: the role's (site.egress.for), an ad-hoc proxy, or direct. */
  egress: Egress;
  /** Targets checked at once (default CHECK_CONCURRENCY). */
  concurrency?: number;
  /** Limit of each stage (default STAGE_TIMEOUT_MS). */
  stageTimeoutMs?: number;
  /** Extra trusted roots (PEM) for the targets' TLS, added to the system's. */
  ca?: string[];
  /** Name resolution for direct routes (default the system's; tests map names to loopback). */
  lookup?: LookupFunction;
  log?: ComponentLog;
  /** Stops the run: targets not started yet come out `skipped`, running ones are cut short. */
  signal?: AbortSignal;
  /** Called as each target finishes (progress). */
  onResult?: (r: CheckResult) => void;
}

/**
 * Checks every target, `concurrency` at a time, and reports them in the order given.
 *
 * @example
 * const { egress } = await site.egress.for(fqdn, "service-connection-point", log);
 * const report = await checkEndpoints(checkTargets(selection), { egress, log });
 * if (!report.ok) for (const r of report.results.filter((r) => r.result === "fail")) console.log(r.url, r.stage, r.code);
 */
export async function checkEndpoints(targets: readonly CheckTarget[], opts: CheckerOptions): Promise<CheckReport> {
  const concurrency = opts.concurrency ?? CHECK_CONCURRENCY;
  const stageTimeoutMs = opts.stageTimeoutMs ?? STAGE_TIMEOUT_MS;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw new ValidationError("concurrency", "a whole number from 1 to 1024");
  if (!Number.isFinite(stageTimeoutMs) || stageTimeoutMs <= 0) throw new ValidationError("timeout", "a positive number of seconds");
  const log = opts.log ?? nullLog;
  const env: CheckEnv = {
    egress: opts.egress,
    timeoutMs: stageTimeoutMs,
    tls: trustContext(opts.ca),
    lookup: opts.lookup ?? (dnsLookup as unknown as LookupFunction),
    signal: opts.signal,
  };
  const started = Date.now();
  const route = describeRoute(opts.egress.route);
  log.info(`Checking ${targets.length} endpoint URL(s) (${route}, ${concurrency} at a time, ${stageTimeoutMs} ms per stage).`);

  const results = new Array<CheckResult>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const r = await checkOne(targets[i]!, env);
      results[i] = r;
      logResult(log, r);
      opts.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(targets.length, 1)) }, worker));

  const report: CheckReport = {
    route,
    startedAt: new Date(started).toISOString(),
    ms: Date.now() - started,
    concurrency,
    stageTimeoutMs,
    ok: isRequiredOk(results),
    aborted: opts.signal?.aborted ?? false,
    summary: summarize(results),
    results,
  };
  log[report.ok ? "info" : "error"](`Endpoint check done in ${report.ms} ms: ${summaryLine(report)}`);
  return report;
}
