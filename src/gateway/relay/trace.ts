/**
 * One client request as the observers see it: counted while it runs (bytes, failovers), published
 * once when it ends, on `opencmg:gateway:refusal` when the gateway answered it before relaying and
 * on `opencmg:gateway:request` once it was relayed. Metrics and log lines subscribe there.
 */
import { performance } from "node:perf_hooks";
import type { ClientIdentity } from "../auth/client-cert.ts";
import { topics, type GatewayRequestResult, type Source } from "../../observe/channels.ts";

export class RequestTrace {
  readonly #started = performance.now();
  #done = false;
  bytesIn = 0;
  bytesOut = 0;
  failovers = 0;
  /** The connection point of the tunnel tried last. */
  connectionPoint: string | undefined;
  /** The query string, when the instance traces queries (limits.traceQuery); never otherwise. */
  query: string | undefined;

  constructor(
    readonly source: Source,
    readonly requestId: string,
    readonly method: string,
    /** Without the query. */
    readonly path: string,
    readonly clientAddress: string | undefined,
  ) {}

  /** "GET /path from 1.2.3.4 (request id)", for log lines. */
  where(): string {
    return `${this.method} ${this.path} from ${this.clientAddress ?? "?"} (request ${this.requestId})`;
  }

  /** True once the request's end was published. */
  get done(): boolean {
    return this.#done;
  }

  /** The gateway answered before relaying: routing, authentication, size. */
  refused(result: GatewayRequestResult, status: number, reason: string, roleId?: string): void {
    if (this.#end()) return;
    if (!topics.gatewayRefusal.active) return;
    topics.gatewayRefusal.publish({
      source: this.source,
      requestId: this.requestId,
      method: this.method,
      path: this.path,
      clientAddress: this.clientAddress,
      status,
      reason,
      result,
      ...(roleId !== undefined ? { roleId } : {}),
    });
  }

  /** A relayed request is over: answered (`ok`), or failed on the way with `status` (0: no answer sent). */
  relayed(r: { result: GatewayRequestResult; status: number; reason?: string; roleId: string; roleKind: string; client: ClientIdentity }): void {
    if (this.#end()) return;
    if (!topics.gatewayRequest.active) return;
    topics.gatewayRequest.publish({
      source: this.source,
      requestId: this.requestId,
      method: this.method,
      path: this.path,
      clientAddress: this.clientAddress,
      roleId: r.roleId,
      roleKind: r.roleKind,
      status: r.status,
      result: r.result,
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      durationMs: Math.round(performance.now() - this.#started),
      failovers: this.failovers,
      client: r.client,
      ...(this.connectionPoint !== undefined ? { connectionPoint: this.connectionPoint } : {}),
      ...(this.query !== undefined ? { query: this.query } : {}),
    });
  }

  /** Marks the end; true when it was marked already (a request ends once). */
  #end(): boolean {
    if (this.#done) return true;
    this.#done = true;
    return false;
  }
}
