/**
 * Relaying one client request on a tunnel, with failover: the least busy ready tunnel takes it;
 * when that tunnel fails before any response byte, the request goes to another one, for idempotent
 * requests or requests the connection point never processed, as long as the body can still be
 * replayed. Bodies stream both ways with backpressure; every wait has a timeout.
 */
import type { ServerResponse } from "node:http";
import http2, { type ClientHttp2Stream, type Http2ServerResponse, type IncomingHttpHeaders } from "node:http2";
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
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;

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
  /** The client's upload share (fairness.ts): milliseconds to stop reading after `n` body bytes. */
  throttle?: (n: number) => number;
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
  /** The role's status once its answer is on its way to the client. */
  #status = 0;

  constructor(
    private readonly deps: RelayDeps,
    private readonly req: ClientRequest,
    private readonly res: ClientResponse,
    private readonly trace: RequestTrace,
    private readonly target: RelayTarget,
  ) {
    this.#body = hasBody(req) ? new BodyRelay(req, target.maxBody, (n) => (trace.bytesIn += n), target.throttle) : null;
  }

  start(): void {
    const { res } = this;
    // The client went away (HTTP/2 RST_STREAM, HTTP/1.1 disconnect): cancel the tunnel stream at
    // once, so the connection point aborts the backend request and the tunnel's counters and
    // buffers are released. A response counts as delivered only when it was complete.
    const onClose = (): void => {
      if (this.#delivered()) return this.#finish("ok", this.#status);
      this.#cancel();
      this.#finish("client_aborted", res.headersSent ? res.statusCode : 0);
    };
    if (gone(res)) return onClose();
    res.once("close", onClose);
    if (this.#body) this.#body.onTooLarge = () => this.#tooLarge();
    this.#attempt();
  }

  #attempt(): void {
    const { deps, trace, req, res } = this;
    if (trace.done || gone(res)) return;
    const tunnel = deps.pool.pick(this.#tried, this.#avoid);
    if (!tunnel) return this.#noTunnel();
    this.#tried.add(tunnel);
    trace.connectionPoint = tunnel.connectionPoint;
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
      cancelStream(stream);
      reply(req, res, 504, "upstream_timeout", "the site did not answer in time");
    }, deps.limits.upstreamResponseTimeoutMs);
    headersTimer.unref();

    stream.setTimeout(deps.limits.streamIdleTimeoutMs, () => {
      deps.log.error(`Request ${trace.where()}: no data moved on ${tunnel.label} for ${deps.limits.streamIdleTimeoutMs} ms; aborting`);
      cancelStream(stream);
      if (attempt.responded) abortResponse(res);
    });
    stream.on("error", (err: StreamError) => {
      attempt.lastError = err;
    });
    // The request could not be sent as it is (e.g. its headers are over the connection point's limit).
    stream.on("frameError", (_type: number, code: number) => {
      attempt.lastError = Object.assign(new Error(`the tunnel refused to send the request (HTTP/2 frame error ${code})`), { code: "ERR_HTTP2_FRAME_ERROR" });
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
    const { deps, trace, req, res } = this;
    const { tunnel, stream } = a;
    const { status, headers } = clientResponseHeaders(upstream);
    const tunnelError = upstream[Header.error];
    if (tunnelError) {
      const netCode = upstream[Header.netCode];
      deps.log.warn(`Request ${trace.where()}: the connection point answered ${status} ${String(tunnelError)}${netCode ? ` (${String(netCode)})` : ""}`);
    }
    if (gone(res)) return cancelStream(stream);
    this.#status = status;
    res.writeHead(status, headers as never);
    // By hand, not stream.pipe (which registers some ten listeners per response) nor
    // stream.pipeline (which waits forever for an "end" that a destroyed HTTP/2 stream never
    // emits once its readable side has seen EOF). Here "close" without "end" means the response
    // was cut short, and the client must see it cut short too. Backpressure as pipe does it: a
    // client that does not read stops the tunnel stream, whose window (TUNNEL_H2.streamWindow)
    // then bounds what is held for it. A client that goes away closes the response, and start()
    // cancels the tunnel stream then. The request's end (ok or client_aborted) is published when
    // the client response closes (start()).
    const out = res as NodeJS.WritableStream;
    const resume = (): void => void stream.resume();
    // HTTP/1.1: the chunks of one tick leave in one TLS write. Node hands HTTP/2 DATA over in
    // pieces of at most 16 KiB (and slivers where a frame header splits a read), and a write
    // each would cost a TLS record and a system call each.
    const h1 = req.httpVersionMajor === 1 ? (res as ServerResponse) : null;
    let corked = false;
    const uncork = (): void => {
      corked = false;
      h1!.uncork();
    };
    let ended = false;
    stream.on("data", (chunk: Buffer) => {
      trace.bytesOut += chunk.length;
      // A client gone meanwhile: start() cancels the tunnel stream; nothing more is written.
      if (gone(res)) return;
      if (h1 && !corked) {
        corked = true;
        h1.cork();
        process.nextTick(uncork);
      }
      if (!out.write(chunk)) {
        stream.pause();
        res.once("drain", resume);
      }
    });
    stream.once("end", () => {
      ended = true;
      if (!gone(res)) out.end();
    });
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
    // Refused for its size (header list over the connection point's limits): every tunnel would
    // refuse it the same way, so it is not retried.
    if (stream.rstCode === NGHTTP2_ENHANCE_YOUR_CALM || lastError?.code === "ERR_HTTP2_FRAME_ERROR") {
      deps.log.error(`Request ${trace.where()}: 431, ${tunnel.label} refused the request's headers (${why}); not retried`);
      this.#finish("too_large", 431, "headers_too_large");
      reply(req, res, 431, "headers_too_large", "the request header fields are too large");
      return;
    }
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
    deps.log.warn(
      `Request ${trace.where()}: 413, the request body (no length declared or more than declared) grew past the ${target.maxBody}-byte limit ` +
        `of role ${target.roleId} (${target.roleKind}); its tunnel stream was reset so the role sees an aborted request`,
    );
    this.#cancel();
    if (!res.headersSent) {
      this.#finish("too_large", 413, "body_too_large");
      reply(req, res, 413, "body_too_large", `request bodies for this endpoint are limited to ${target.maxBody} bytes`);
    } else abortResponse(res);
  }

  #cancel(): void {
    const s = this.#current;
    if (s) cancelStream(s);
  }

  /** True when the client got the whole response (Http2ServerResponse also emits "finish" on reset). */
  #delivered(): boolean {
    const { req, res } = this;
    if (req.httpVersionMajor === 2) {
      const stream = (res as Http2ServerResponse).stream;
      return res.writableEnded && stream !== undefined && stream.rstCode === NGHTTP2_NO_ERROR;
    }
    return (res as ServerResponse).writableFinished;
  }

  #finish(result: GatewayRequestResult, status: number, reason?: string): void {
    const { roleId, roleKind, client } = this.target;
    this.trace.relayed({ result, status, roleId, roleKind, client, ...(reason !== undefined ? { reason } : {}) });
  }
}

/**
 * Resets a tunnel stream with CANCEL and nothing else. `close()` ends the writable side first,
 * which sends END_STREAM when the request body is still open: the connection point would see a
 * complete (truncated) body before the reset. With the end made a no-op, only RST_STREAM goes out
 * and the backend request is aborted.
 */
export function cancelStream(stream: ClientHttp2Stream): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.writableEnded) (stream as unknown as { _final: (cb: () => void) => void })._final = (cb) => cb();
  stream.close(NGHTTP2_CANCEL);
}
