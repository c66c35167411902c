/**
 * One target through its stages (dns, proxy, connect, tls, http): the first stage that fails
 * decides, and every stage is listed in the result, those that did not run saying why.
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { toNetError } from "../egress/errors.ts";
import { CHECK_STAGES, type CheckResult, type CheckStage, type StageOutcome } from "./check-report.ts";
import { headOver, headViaProxy, resolve } from "./check-probes.ts";
import { connectStage, proxiedHttpStage, runStage, StageFailure, type CheckEnv, type StageContext } from "./check-stage.ts";
import type { CheckTarget } from "./check-targets.ts";
import { handshake } from "./check-tls.ts";

const STOPPED = "the check was stopped before this endpoint was done";

/** The stage outcomes of one target, each timed from the end of the one before. */
class StageRecord {
  readonly stages: StageOutcome[] = [];
  private stageStart = Date.now();

  done(stage: CheckStage, detail: string, result: StageOutcome["result"] = "pass"): void {
    // Through a proxy, "dns" is marked skipped up front; the proxy's "cannot resolve" replaces that.
    const i = this.stages.findIndex((x) => x.stage === stage);
    if (i !== -1) this.stages.splice(i, 1);
    this.stages.push({ stage, result, ms: Date.now() - this.stageStart, detail });
    this.stageStart = Date.now();
  }

  /** A stage that ran as part of another (not timed on its own). */
  alongside(stage: CheckStage, detail: string): void {
    this.stages.push({ stage, result: "pass", ms: 0, detail });
  }

  has(stage: CheckStage): boolean {
    return this.stages.some((x) => x.stage === stage);
  }

  /** Every stage listed, in order; those that did not run say why. */
  all(why: string): StageOutcome[] {
    for (const s of CHECK_STAGES) if (!this.has(s)) this.stages.push({ stage: s, result: "skipped", ms: 0, detail: why });
    return this.stages.sort((a, b) => CHECK_STAGES.indexOf(a.stage) - CHECK_STAGES.indexOf(b.stage));
  }
}

/** Checks one target; never throws (a failure is a result). */
export async function checkOne(t: CheckTarget, env: CheckEnv): Promise<CheckResult> {
  const base = { url: t.url, address: t.address, endpointIds: [...t.endpointIds], host: t.host, port: t.port, scheme: t.scheme, required: t.required };
  const none = { stage: null, code: null, hop: null, httpStatus: null, ms: 0, stages: [] };
  if (t.skip) return { ...base, ...none, result: "skipped", message: t.skip };
  if (t.untestable) return { ...base, ...none, result: "not-testable", message: `a wildcard (${t.address}) with no known host to try` };
  if (env.signal?.aborted) return { ...base, ...none, result: "skipped", message: STOPPED };

  const started = Date.now();
  const record = new StageRecord();
  const ctx: StageContext = { route: env.egress.route, targetHost: `${t.host}:${t.port}` };
  const viaProxy = env.egress.route.mode === "proxy";
  const held: { socket?: Socket } = {};
  try {
    // The roles send http: requests to the proxy in absolute form; so does the check.
    const status = viaProxy && t.scheme === "http" ? await proxiedHttp(t, env, record, ctx) : await overConnection(t, env, record, ctx, held);
    const notRun = t.scheme === "http" ? "not needed for http:" : viaProxy ? "not needed on this route" : "not needed: direct route";
    const warn = status >= 400;
    record.done("http", `HTTP ${status}`, warn ? "warn" : "pass");
    const ms = Date.now() - started;
    const answered = { ...base, stage: "http" as const, code: null, hop: null, httpStatus: status, ms, stages: record.all(notRun) };
    if (warn) return { ...answered, result: "warn", message: `reachable, but HEAD ${t.path} answered HTTP ${status}` };
    return { ...answered, result: "pass", message: `HEAD answered HTTP ${status}` };
  } catch (e) {
    const ms = Date.now() - started;
    if (env.signal?.aborted) return { ...base, ...none, ms, result: "skipped", message: STOPPED, stages: record.all(STOPPED) };
    const f = e instanceof StageFailure ? e : new StageFailure("connect", toNetError(e, ctx));
    record.done(f.stage, f.error.message, "fail");
    // Past the proxy stage, the proxy did its part (it took our request and account).
    if (viaProxy && CHECK_STAGES.indexOf(f.stage) > CHECK_STAGES.indexOf("proxy") && !record.has("proxy")) record.alongside("proxy", "the proxy accepted the request");
    return { ...base, result: "fail", stage: f.stage, code: f.error.code, hop: f.error.hop, httpStatus: null, ms, stages: record.all(`not run: the ${f.stage} stage failed`), message: f.error.message };
  } finally {
    held.socket?.destroy();
  }
}

/** An http: target through the proxy: one absolute-form HEAD covers the proxy, connect and http stages. */
async function proxiedHttp(t: CheckTarget, env: CheckEnv, record: StageRecord, ctx: StageContext): Promise<number> {
  record.done("dns", "resolved by the proxy", "skipped");
  const status = await runStage("http", env, (signal) => headViaProxy(env.egress, t, env.timeoutMs, signal), ctx, proxiedHttpStage);
  record.alongside("proxy", "the proxy forwarded the request (timed with the http stage)");
  record.alongside("connect", "the proxy reached the endpoint (timed with the http stage)");
  return status;
}

/** dns (direct only), connect (or CONNECT through the proxy), tls (https:), then HEAD over that connection. */
async function overConnection(t: CheckTarget, env: CheckEnv, record: StageRecord, ctx: StageContext, held: { socket?: Socket }): Promise<number> {
  const viaProxy = env.egress.route.mode === "proxy";
  let dialHost = t.host;
  if (viaProxy) record.done("dns", "resolved by the proxy", "skipped");
  else {
    dialHost = await runStage("dns", env, () => resolve(env.lookup, t.host), ctx);
    record.done("dns", dialHost);
  }
  const raw = await runStage("connect", env, () => env.egress.connect(dialHost, t.port, { timeoutMs: env.timeoutMs }), ctx, connectStage);
  held.socket = raw;
  // Small writes each way (handshake, HEAD): Nagle's algorithm would hold them back.
  raw.setNoDelay(true);
  if (viaProxy) record.alongside("proxy", "CONNECT accepted (timed with the connect stage)");
  record.done("connect", viaProxy ? "tunnel open" : `connected to ${dialHost}`);
  if (t.scheme === "https") {
    const tls: TLSSocket = await runStage("tls", env, (signal) => handshake(raw, t.host, env.tls, signal), ctx);
    held.socket = tls;
    record.done("tls", `${tls.getProtocol() ?? "TLS"}: chain and name (${t.host}) verified`);
  }
  const socket = held.socket;
  return runStage("http", env, (signal) => headOver(socket, t, signal), ctx);
}
