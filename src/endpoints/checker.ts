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
import { request as httpRequest } from "node:http";
import { isIP, type LookupFunction, type Socket } from "node:net";
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext, type TLSSocket } from "node:tls";
import { NetCode, NetError, ValidationError, type Hop } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { Egress } from "../egress/egress.ts";
import { describeRoute, hostForUrl } from "../egress/route.ts";
import { nullLog, type ComponentLog } from "../logs/cmtrace.ts";
import type { ResolvedEndpoint, Scheme, Selection } from "./catalog.ts";

/** How many targets the product checks at once. */
export const CHECK_CONCURRENCY = 16;
/** Default limit of each stage. */
export const STAGE_TIMEOUT_MS = 10_000;

export const CHECK_STAGES = ["dns", "proxy", "connect", "tls", "http"] as const;
export type CheckStage = (typeof CHECK_STAGES)[number];
export type CheckResultKind = "pass" | "fail" | "warn" | "not-testable" | "skipped";

/** One URL to try, standing for one or more catalog entries (the same URL appears in several sections). */
export interface CheckTarget {
  /** What is tried: `https://go.microsoft.com/` (a port only when it is not the scheme's default). */
  url: string;
  scheme: Scheme;
  host: string;
  port: number;
  /** Path and query of the HEAD request. */
  path: string;
  /** The catalog entries this URL stands for. */
  endpointIds: string[];
  /** The address as the catalog writes it (`*.manage.microsoft.com` for a wildcard tried through a known host). */
  address: string;
  /** Needed (not optional) by at least one of its entries. */
  required: boolean;
  /** A wildcard with no known host: reported `not-testable`, never tried. */
  untestable?: boolean;
  /** Why it is not tried at all (reported `skipped`). */
  skip?: string;
}

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

export interface TargetOptions {
  /** A concrete host to try for a wildcard entry, by wildcard (`*.manage.microsoft.com` -> `a.manage.microsoft.com`). */
  wildcardHosts?: Record<string, string>;
}

/**
 * The targets of a selection: one per distinct URL (entries that share a URL are merged), in
 * catalog order. Wildcards are untestable unless `wildcardHosts` gives a host under them;
 * intranet entries (firewall rules between site systems) are skipped.
 *
 * @example
 * const targets = checkTargets(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }));
 */
export function checkTargets(selection: Selection | readonly ResolvedEndpoint[], opts: TargetOptions = {}): CheckTarget[] {
  const endpoints = "endpoints" in selection ? selection.endpoints : selection;
  const known = new Map<string, string>();
  for (const [pattern, host] of Object.entries(opts.wildcardHosts ?? {})) {
    const p = pattern.toLowerCase();
    const h = host.toLowerCase();
    if (!p.startsWith("*.") || !h.endsWith(p.slice(1)) || h.length <= p.length - 1)
      throw new ValidationError("wildcardHost", `${host} is not a host under ${pattern}`);
    known.set(p, h);
  }
  const byUrl = new Map<string, CheckTarget>();
  for (const e of endpoints) {
    for (const t of e.targets) {
      const concrete = e.wildcard ? known.get(e.host) : e.host;
      const url = new URL(t.url.replace("://*.", "://wildcard."));
      const host = concrete ?? e.host;
      const path = `${url.pathname}${url.search}`;
      const key = `${t.scheme}://${host}:${t.port}${path}`;
      const existing = byUrl.get(key);
      if (existing) {
        existing.endpointIds.push(e.id);
        existing.required ||= e.required;
        continue;
      }
      byUrl.set(key, {
        url: targetUrl(t.scheme, host, t.port, path),
        scheme: t.scheme,
        host,
        port: t.port,
        path,
        endpointIds: [e.id],
        address: e.resolvedAddress,
        required: e.required,
        ...(e.wildcard && concrete === undefined ? { untestable: true } : {}),
        ...(e.network === "intranet" ? { skip: "an intranet firewall rule between site systems: check it from the software update point on the child site" } : {}),
      });
    }
  }
  return [...byUrl.values()];
}

/** The same target on another port (where a stand-in listens, in tests and benchmarks). */
export function onPort(t: CheckTarget, port: number): CheckTarget {
  return { ...t, port, url: targetUrl(t.scheme, t.host, port, t.path) };
}

function targetUrl(scheme: Scheme, host: string, port: number, path: string): string {
  const def = scheme === "https" ? 443 : 80;
  return `${scheme}://${hostForUrl(host)}${port === def ? "" : `:${port}`}${path}`;
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
  const env: Env = {
    egress: opts.egress,
    timeoutMs: stageTimeoutMs,
    // Node's `ca` replaces the default roots: keep them and add ours. Built once per run, since
    // parsing the ~140 roots for every handshake costs more than the handshake itself.
    tls: opts.ca && opts.ca.length > 0 ? createSecureContext({ ca: [...rootCertificates, ...opts.ca] }) : undefined,
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

  const summary = summarize(results);
  const report: CheckReport = {
    route,
    startedAt: new Date(started).toISOString(),
    ms: Date.now() - started,
    concurrency,
    stageTimeoutMs,
    ok: isRequiredOk(results),
    aborted: opts.signal?.aborted ?? false,
    summary,
    results,
  };
  log[report.ok ? "info" : "error"](`Endpoint check done in ${report.ms} ms: ${summaryLine(report)}`);
  return report;
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

function logResult(log: ComponentLog, r: CheckResult): void {
  const fields = { url: r.url, result: r.result, stage: r.stage, code: r.code, ms: r.ms };
  if (r.result === "fail") log.error(`${r.url}: failed at the ${r.stage} stage, error ${r.code}: ${r.message}`, fields);
  else if (r.result === "warn") log.warn(`${r.url}: ${r.message}`, fields);
  else log.info(`${r.url}: ${r.result} (${r.ms} ms)${r.result === "pass" ? "" : `: ${r.message}`}`, fields);
}

interface Env {
  egress: Egress;
  timeoutMs: number;
  /** The trusted roots with the extra CAs; undefined: Node's default context. */
  tls: SecureContext | undefined;
  lookup: LookupFunction;
  signal: AbortSignal | undefined;
}

/** A stage failed: the code and hop come from the NetError. */
class StageFailure extends Error {
  constructor(
    readonly stage: CheckStage,
    readonly error: NetError,
  ) {
    super(error.message);
  }
}

async function checkOne(t: CheckTarget, env: Env): Promise<CheckResult> {
  const base = { url: t.url, address: t.address, endpointIds: [...t.endpointIds], host: t.host, port: t.port, scheme: t.scheme, required: t.required };
  const none = { stage: null, code: null, hop: null, httpStatus: null, ms: 0, stages: [] };
  const stopped = "the check was stopped before this endpoint was done";
  if (t.skip) return { ...base, ...none, result: "skipped", message: t.skip };
  if (t.untestable) return { ...base, ...none, result: "not-testable", message: `a wildcard (${t.address}) with no known host to try` };
  if (env.signal?.aborted) return { ...base, ...none, result: "skipped", message: stopped };

  const started = Date.now();
  const stages: StageOutcome[] = [];
  const ctx = { route: env.egress.route, targetHost: `${t.host}:${t.port}` };
  let stageStart = Date.now();
  const done = (stage: CheckStage, detail: string, result: StageOutcome["result"] = "pass"): void => {
    // Through a proxy, "dns" is marked skipped up front; the proxy's "cannot resolve" replaces that.
    const i = stages.findIndex((x) => x.stage === stage);
    if (i !== -1) stages.splice(i, 1);
    stages.push({ stage, result, ms: Date.now() - stageStart, detail });
    stageStart = Date.now();
  };
  /** Every stage listed, in order; those that did not run say why. */
  const allStages = (why: string): StageOutcome[] => {
    for (const s of CHECK_STAGES) if (!stages.some((x) => x.stage === s)) stages.push({ stage: s, result: "skipped", ms: 0, detail: why });
    return stages.sort((a, b) => CHECK_STAGES.indexOf(a.stage) - CHECK_STAGES.indexOf(b.stage));
  };
  const viaProxy = env.egress.route.mode === "proxy";
  let socket: Socket | undefined;
  try {
    let status: number;
    if (viaProxy && t.scheme === "http") {
      // The roles send http: requests to the proxy in absolute form; so does the check.
      done("dns", "resolved by the proxy", "skipped");
      status = await stage("http", env, (signal) => headViaProxy(env.egress, t, env.timeoutMs, signal), ctx, proxiedHttpStage);
      stages.push({ stage: "proxy", result: "pass", ms: 0, detail: "the proxy forwarded the request (timed with the http stage)" });
      stages.push({ stage: "connect", result: "pass", ms: 0, detail: "the proxy reached the endpoint (timed with the http stage)" });
    } else {
      let dialHost = t.host;
      if (viaProxy) done("dns", "resolved by the proxy", "skipped");
      else {
        dialHost = await stage("dns", env, () => resolve(env.lookup, t.host), ctx);
        done("dns", dialHost);
      }
      socket = await stage("connect", env, () => env.egress.connect(dialHost, t.port, { timeoutMs: env.timeoutMs }), ctx, connectStage);
      // Small writes each way (handshake, HEAD): Nagle's algorithm would hold them back.
      socket.setNoDelay(true);
      if (viaProxy) stages.push({ stage: "proxy", result: "pass", ms: 0, detail: "CONNECT accepted (timed with the connect stage)" });
      done("connect", viaProxy ? "tunnel open" : `connected to ${dialHost}`);
      if (t.scheme === "https") {
        const raw = socket;
        socket = await stage("tls", env, (signal) => handshake(raw, t.host, env.tls, signal), ctx);
        const tls = socket as TLSSocket;
        done("tls", `${tls.getProtocol() ?? "TLS"}: chain and name (${t.host}) verified`);
      }
      const s = socket;
      status = await stage("http", env, (signal) => headOver(s, t, signal), ctx);
    }
    const notNeeded = viaProxy ? "not needed on this route" : "not needed: direct route";
    if (status >= 400) {
      done("http", `HTTP ${status}`, "warn");
      const ms = Date.now() - started;
      return { ...base, result: "warn", stage: "http", code: null, hop: null, httpStatus: status, ms, stages: allStages(t.scheme === "http" ? "not needed for http:" : notNeeded), message: `reachable, but HEAD ${t.path} answered HTTP ${status}` };
    }
    done("http", `HTTP ${status}`);
    const ms = Date.now() - started;
    return { ...base, result: "pass", stage: "http", code: null, hop: null, httpStatus: status, ms, stages: allStages(t.scheme === "http" ? "not needed for http:" : notNeeded), message: `HEAD answered HTTP ${status}` };
  } catch (e) {
    const ms = Date.now() - started;
    if (env.signal?.aborted) return { ...base, ...none, ms, result: "skipped", message: stopped, stages: allStages(stopped) };
    const f = e instanceof StageFailure ? e : new StageFailure("connect", toNetError(e, ctx));
    done(f.stage, f.error.message, "fail");
    // Past the proxy stage, the proxy did its part (it took our request and account).
    if (viaProxy && CHECK_STAGES.indexOf(f.stage) > CHECK_STAGES.indexOf("proxy") && !stages.some((x) => x.stage === "proxy"))
      stages.push({ stage: "proxy", result: "pass", ms: 0, detail: "the proxy accepted the request" });
    return { ...base, result: "fail", stage: f.stage, code: f.error.code, hop: f.error.hop, httpStatus: null, ms, stages: allStages(`not run: the ${f.stage} stage failed`), message: f.error.message };
  } finally {
    socket?.destroy();
  }
}

/** Through a CONNECT: the proxy's own failures are the proxy stage; "cannot resolve" is the dns stage. */
function connectStage(e: NetError): CheckStage {
  if (e.hop === "proxy") return "proxy";
  return e.code === NetCode.NAME_NOT_RESOLVED ? "dns" : "connect";
}

/** An absolute-form request: the proxy's answer says which part failed. */
function proxiedHttpStage(e: NetError): CheckStage {
  if (e.hop === "proxy") return "proxy";
  if (e.code === NetCode.NAME_NOT_RESOLVED) return "dns";
  if (e.code === NetCode.CANNOT_CONNECT) return "connect";
  return "http";
}

/**
 * Runs one stage with its timeout (and the run's abort signal). Failures become a StageFailure
 * whose stage is `name`, or what `stageOf` makes of the NetError.
 */
async function stage<T>(
  name: CheckStage,
  env: Env,
  fn: (signal: AbortSignal) => Promise<T>,
  ctx: { route: Egress["route"]; targetHost: string },
  stageOf: (e: NetError) => CheckStage = () => name,
): Promise<T> {
  if (env.signal?.aborted) throw new NetError(NetCode.TIMEOUT, "target", ctx.targetHost, "the check was stopped");
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  // Rejects on the stage's time limit or when the run is stopped, whether or not `fn` listens.
  const limit = new Promise<never>((_, reject) => {
    const stop = (ne: NetError, failure: boolean): void => {
      abort.abort(ne);
      reject(failure ? new StageFailure(name, ne) : ne);
    };
    onAbort = () => stop(new NetError(NetCode.TIMEOUT, "target", ctx.targetHost, "the check was stopped"), false);
    env.signal?.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(() => {
      const via = ctx.route.mode === "proxy" ? ` (through ${describeRoute(ctx.route)})` : "";
      stop(new NetError(NetCode.TIMEOUT, "target", ctx.targetHost, `${ctx.targetHost}: no answer within ${env.timeoutMs} ms at the ${name} stage${via}`), true);
    }, env.timeoutMs);
  });
  const work = fn(abort.signal);
  try {
    return await Promise.race([work, limit]);
  } catch (e) {
    if (abort.signal.aborted) {
      // The work may still settle later (a socket that connects after the limit): close it then.
      work.then((v) => (v as { destroy?: () => void })?.destroy?.(), () => {});
      if (e instanceof StageFailure) throw e;
    }
    const ne = toNetError(e, ctx);
    throw new StageFailure(stageOf(ne), ne);
  } finally {
    clearTimeout(timer);
    if (onAbort) env.signal?.removeEventListener("abort", onAbort);
  }
}

function resolve(lookup: LookupFunction, host: string): Promise<string> {
  if (isIP(host)) return Promise.resolve(host);
  return new Promise((ok, fail) =>
    lookup(host, { all: false }, (err, address) => {
      if (err) fail(err);
      else ok(typeof address === "string" ? address : (address as unknown as { address: string }[])[0]!.address);
    }),
  );
}

function handshake(socket: Socket, host: string, secureContext: SecureContext | undefined, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((ok, fail) => {
    const tls = tlsConnect({
      socket,
      // SNI only for names; the certificate is checked against `host` either way.
      ...(isIP(host) ? {} : { servername: host }),
      host,
      ...(secureContext ? { secureContext } : {}),
      ALPNProtocols: ["http/1.1"],
      rejectUnauthorized: true,
    });
    const onAbort = (): void => {
      tls.destroy();
      fail(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    tls.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      ok(tls);
    });
    tls.once("error", (e) => {
      signal.removeEventListener("abort", onAbort);
      tls.destroy();
      fail(e);
    });
  });
}

/** HEAD over an open connection (plain or TLS); resolves with the status. */
function headOver(socket: Socket, t: CheckTarget, signal: AbortSignal): Promise<number> {
  return new Promise((ok, fail) => {
    const req = httpRequest({
      createConnection: () => socket,
      method: "HEAD",
      host: t.host,
      port: t.port,
      path: t.path,
      headers: { host: hostHeader(t), "user-agent": "OpenCMG endpoint check", connection: "close" },
      signal,
    });
    req.once("response", (res) => {
      res.resume();
      ok(res.statusCode ?? 0);
    });
    req.once("error", (e) => fail(signal.aborted ? signal.reason : e));
    req.end();
  });
}

async function headViaProxy(egress: Egress, t: CheckTarget, timeoutMs: number, signal: AbortSignal): Promise<number> {
  const res = await egress.request(t.url, {
    method: "HEAD",
    headers: { "user-agent": "OpenCMG endpoint check" },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal,
  });
  await res.body.dump().catch(() => {});
  return res.statusCode;
}

function hostHeader(t: CheckTarget): string {
  const def = t.scheme === "https" ? 443 : 80;
  return t.port === def ? hostForUrl(t.host) : `${hostForUrl(t.host)}:${t.port}`;
}
