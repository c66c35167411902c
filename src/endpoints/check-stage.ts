/**
 * How one stage of a check runs: with its own time limit and the run's abort signal, and a
 * failure that names the stage (and, from the NetError, the SPEC code and the hop).
 */
import type { LookupFunction } from "node:net";
import type { SecureContext } from "node:tls";
import { NetCode, NetError } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { Egress } from "../egress/egress.ts";
import { describeRoute } from "../egress/route.ts";
import type { CheckStage } from "./check-report.ts";

/** What every stage of a run shares. */
export interface CheckEnv {
  egress: Egress;
  timeoutMs: number;
  /** The trusted roots with the extra CAs; undefined: Node's default context. */
  tls: SecureContext | undefined;
  lookup: LookupFunction;
  signal: AbortSignal | undefined;
}

/** The route and target a NetError is about. */
export interface StageContext {
  route: Egress["route"];
  targetHost: string;
}

/** A stage failed: the code and hop come from the NetError. */
export class StageFailure extends Error {
  constructor(
    readonly stage: CheckStage,
    readonly error: NetError,
  ) {
    super(error.message);
  }
}

/** Through a CONNECT: the proxy's own failures are the proxy stage; "cannot resolve" is the dns stage. */
export function connectStage(e: NetError): CheckStage {
  if (e.hop === "proxy") return "proxy";
  return e.code === NetCode.NAME_NOT_RESOLVED ? "dns" : "connect";
}

/** An absolute-form request: the proxy's answer says which part failed. */
export function proxiedHttpStage(e: NetError): CheckStage {
  if (e.hop === "proxy") return "proxy";
  if (e.code === NetCode.NAME_NOT_RESOLVED) return "dns";
  if (e.code === NetCode.CANNOT_CONNECT) return "connect";
  return "http";
}

/**
 * Runs one stage with its timeout (and the run's abort signal). Failures become a StageFailure
 * whose stage is `name`, or what `stageOf` makes of the NetError.
 *
 * @example
 * const socket = await runStage("connect", env, () => env.egress.connect(host, port), ctx, connectStage);
 */
export async function runStage<T>(
  name: CheckStage,
  env: CheckEnv,
  fn: (signal: AbortSignal) => Promise<T>,
  ctx: StageContext,
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
