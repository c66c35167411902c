/**
 * Relaying one client request on a tunnel, with failover: the least busy ready tunnel takes it;
 * when that tunnel fails before any response byte, the request goes to another one, for idempotent
 * requests or requests the connection point never processed, as long as the body can still be
 * replayed. Bodies stream both ways with backpressure; every wait has a timeout.
 */
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import type { ClientIdentity, ClientRequest } from "../auth/client-cert.ts";
import type { GatewayLimits } from "../config.ts";
import { clientResponseHeaders } from "../../wire/tunnel/headers.ts";
import { Header } from "../../wire/tunnel/protocol.ts";
import type { GatewayRequestResult } from "../../observe/channels.ts";
import type { Tunnel, TunnelPool } from "../tunnels/tunnel-pool.ts";
import { BodyRelay } from "./body.ts";
import { hasBody } from "./checks.ts";
import { abortResponse, gone, reply, type ClientResponse } from "./reply.ts";
import type { RequestTrace } from "./trace.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

export interface RelayDeps {
  pool: TunnelPool;
  limits: GatewayLimits;
  /** CMGHttpHandler.log */
  log: ComponentLog;
}

/** Where the request goes: its role, the body limit, and the tunnel request's headers. */
export interface RelayTarget {
  roleId: string;
  roleKind: string;
  maxBody: number;
  client: ClientIdentity;
  headers: Record<string, unknown>;
}

type StreamError = Error & { code?: string };

/**
 * Relays one request: picks tunnels until one answers or none is left.
 *
 * @example
 * new Relay(deps, req, res, trace, { roleId, roleKind: "mp", maxBody, client: verdict.identity, headers }).start();
 */
export class Relay {
  readonly #body: BodyRelay | null;
  readonly #tried = new Set<Tunnel>();
  /** Connection points that failed this request: the next pick prefers another one. */
  readonly #avoid = new Set<string>();
  #current: ClientHttp2Stream | null = null;

  constructor(
    private readonly deps: RelayDeps,
    private readonly req: ClientRequest,
    private readonly res: ClientResponse,
    private readonly trace: RequestTrace,
    private readonly target: RelayTarget,
  ) {
    this.#body = hasBody(req) ? new BodyRelay(req, target.maxBody, (n) => (trace.bytesIn += n)) : null;
  }

  start(): void {
    const { res } = this;
    // The client went away: cancel upstream so the management point stops working for nobody.
    res.on("close", () => {
      if (!res.writableFinished) {
        this.#cancel();
        this.#finish("client_aborted", res.headersSent ? res.statusCode : 0);
      }
    });
    if (this.#body) this.#body.onTooLarge = () => this.#tooLarge();
    this.#attempt();
  }

  #attempt(): void {
    const { deps, trace, req, res } = this;
    if (trace.done || gone(res)) return;
    const tunnel = deps.pool.pick(this.#tried, this.#avoid);
    if (!tunnel) return this.#noTunnel();
    this.#tried.add(tunnel);
    let stream: ClientHttp2Stream;
    try {
      stream = tunnel.open(this.target.headers as never, this.#body === null);
    } catch (err) {
      // The session is closing or gone: nothing was sent, any request may go elsewhere.
      this.#avoid.add(tunnel.connectionPoint);
      deps.log.warn(`Request ${trace.where()}: ${tunnel.label} cannot open a stream (${(err as Error).message}); trying another`);
      trace.failovers++;
      this.#attempt();
      return;
    }
    this.#current = stream;
    const attempt = { tunnel, stream, responded: false, lastError: undefined as StreamError | undefined };

    const headersTimer = setTimeout(() => {
      if (attempt.responded || trace.done) return;
      deps.log.error(`Request ${trace.where()}: 504, ${tunnel.label} gave no answer within ${deps.limits.upstreamResponseTimeoutMs} ms`);
      this.#finish("upstream_timeout", 504, "upstream_timeout");
      stream.close(NGHTTP2_CANCEL);
      reply(req, res, 504, "upstream_timeout", "the site did not answer in time");
    }, deps.limits.upstreamResponseTimeoutMs);
    headersTimer.unref();

    stream.setTimeout(deps.limits.streamIdleTimeoutMs, () => {
      deps.log.error(`Request ${trace.where()}: no data moved on ${tunnel.label} for ${deps.limits.streamIdleTimeoutMs} ms; aborting`);
      stream.close(NGHTTP2_CANCEL);
      if (attempt.responded) abortResponse(res);
    });
    stream.on("error", (err: StreamError) => {
      attempt.lastError = err;
    });
    stream.on("response", (upstream: IncomingHttpHeaders & { ":status"?: number }) => {
      if (trace.done && !attempt.responded) return;
      attempt.responded = true;
      clearTimeout(headersTimer);
      this.#respond(attempt, upstream);
    });
    stream.on("close", () => {
      clearTimeout(headersTimer);
      if (attempt.responded || trace.done) return;
      this.#failedBeforeAnswer(attempt);
    });
    this.#body?.attach(stream);
  }

  /** Streams the role's answer to the client. */
  #respond(a: { tunnel: Tunnel; stream: ClientHttp2Stream; lastError?: StreamError }, upstream: IncomingHttpHeaders & { ":status"?: number }): void {
    const { deps, trace, res } = this;
    const { tunnel, stream } = a;
    const { status, headers } = clientResponseHeaders(upstream);
    const tunnelError = upstream[Header.error];
    if (tunnelError) {
      const netCode = upstream[Header.netCode];
      deps.log.warn(`Request ${trace.where()}: the connection point answered ${status} ${String(tunnelError)}${netCode ? ` (${String(netCode)})` : ""}`);
    }
    if (gone(res)) return;
    res.writeHead(status, headers as never);
    stream.on("data", (chunk: Buffer) => (trace.bytesOut += chunk.length));
    // stream.pipe, not stream.pipeline: pipeline waits forever for an "end" that a destroyed
    // HTTP/2 stream never emits once its readable side has seen EOF. Here "close" without
    // "end" means the response was cut short, and the client must see it cut short too.
    let ended = false;
    stream.once("end", () => {
      ended = true;
    });
    (stream as NodeJS.ReadableStream).pipe(res as NodeJS.WritableStream);
    res.once("finish", () => this.#finish("ok", status));
    stream.once("close", () => {
      if (ended || gone(res)) return;
      deps.log.warn(`Request ${trace.where()}: the response broke off on ${tunnel.label} (${a.lastError?.message ?? `stream closed with code ${stream.rstCode}`})`);
      this.#finish("upstream_error", status);
      abortResponse(res);
    });
  }

  /** The tunnel failed before any response byte reached the client: retry elsewhere when that is safe. */
  #failedBeforeAnswer(a: { tunnel: Tunnel; stream: ClientHttp2Stream; lastError?: StreamError }): void {
    const { deps, trace, req, res } = this;
    const { tunnel, stream, lastError } = a;
    const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || lastError?.code === "ERR_HTTP2_GOAWAY_SESSION";
    const replayable = this.#body === null || this.#body.replayable;
    const why = lastError?.message ?? `stream closed with code ${stream.rstCode}`;
    this.#avoid.add(tunnel.connectionPoint);
    const method = req.method ?? "GET";
    if (!gone(res) && replayable && (IDEMPOTENT.has(method) || refused) && this.#tried.size < deps.limits.maxAttempts) {
      deps.log.warn(`Request ${trace.where()}: ${tunnel.label} failed before answering (${why}); retrying on another tunnel`);
      trace.failovers++;
      this.#attempt();
      return;
    }
    deps.log.error(`Request ${trace.where()}: 502, ${tunnel.label} failed before answering (${why}) and the request cannot be retried`);
    this.#finish("upstream_error", 502, "tunnel_failed");
    reply(req, res, 502, "tunnel_failed", "the connection to the site failed");
  }

  #noTunnel(): void {
    const { deps, trace, req, res } = this;
    if (this.#tried.size === 0) {
      this.#finish("no_tunnel", 503, "no_connection_point");
      deps.log.warn(`Request ${trace.where()}: 503, no connection point is connected`);
      reply(req, res, 503, "no_connection_point", "no connection point is connected to this gateway", { "retry-after": String(deps.limits.retryAfterSeconds) });
    } else {
      this.#finish("upstream_error", 502, "tunnel_failed");
      deps.log.error(`Request ${trace.where()}: 502, the tunnel failed and no other tunnel could take the request`);
      reply(req, res, 502, "tunnel_failed", "the connection to the site failed");
    }
  }

  #tooLarge(): void {
    const { deps, trace, req, res, target } = this;
    deps.log.warn(`Request ${trace.where()}: 413, body grew past the ${target.maxBody}-byte limit of role ${target.roleId}`);
    this.#cancel();
    if (!res.headersSent) {
      this.#finish("too_large", 413, "body_too_large");
      reply(req, res, 413, "body_too_large", `request bodies for this endpoint are limited to ${target.maxBody} bytes`);
    } else abortResponse(res);
  }

  #cancel(): void {
    const s = this.#current;
    if (s && !s.destroyed) s.close(NGHTTP2_CANCEL);
  }

  #finish(result: GatewayRequestResult, status: number, reason?: string): void {
    const { roleId, roleKind, client } = this.target;
    this.trace.relayed({ result, status, roleId, roleKind, client, ...(reason !== undefined ? { reason } : {}) });
  }
}
