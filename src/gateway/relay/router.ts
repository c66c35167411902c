/**
 * The router: from a client request to a tunnel stream and back.
 *
 *   /<scheme>/<roleId>/<path>     scheme: CCM_Proxy_MutualAuth (client certificates); the
 *                                 authenticator for a scheme is looked up, never hard-wired
 *
 * Order of checks: settings present (else 503), client authenticated (else 403 with the reason),
 * role known (else 404), role allows CMG traffic (else 403; nothing goes on-premises), body size
 * (else 413), a ready tunnel (else 503 + Retry-After). Then the request is relayed on the least
 * busy tunnel and retried on another one when the tunnel fails before any response byte, for
 * idempotent requests or requests the connection point never processed, as long as the body can
 * still be replayed. Bodies stream both ways with backpressure; every wait has a timeout.
 */
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import http2, { type ClientHttp2Stream, type Http2ServerRequest, type Http2ServerResponse, type IncomingHttpHeaders } from "node:http2";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import type { AuthVerdict, ClientAuthenticator, ClientRequest } from "../auth/client-cert.ts";
import type { GatewayLimits } from "../config.ts";
import { clientResponseHeaders, tunnelRequestHeaders } from "../../wire/tunnel/headers.ts";
import type { GatewayMetrics, RequestResult } from "../metrics.ts";
import { Header, ROLE_ID } from "../../wire/tunnel/protocol.ts";
import type { SettingsStore } from "../settings-store.ts";
import type { Tunnel, TunnelPool } from "../tunnels/tunnel-pool.ts";

export type ClientResponse = ServerResponse | Http2ServerResponse;

export interface RouterDeps {
  settings: SettingsStore;
  pool: TunnelPool;
  /** Authenticator by URL scheme segment, e.g. { CCM_Proxy_MutualAuth: mtls }. Matched case-insensitively. */
  authenticators: Record<string, ClientAuthenticator>;
  limits: GatewayLimits;
  metrics: GatewayMetrics;
  /** CMGHttpHandler.log */
  log: ComponentLog;
}

/** A request on its way through the router, once its path is parsed. */
interface RoutedRequest {
  requestId: string;
  /** "GET /path from 1.2.3.4 (request id)", built only when a log line needs it. */
  where: () => string;
  roleId: string;
  /** Path and query for the role's internal URL. */
  path: string;
}

/** Bodies up to this size are kept while they stream, so the request can be retried on another tunnel. */
const REPLAY_LIMIT = 64 * 1024;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** `/scheme/roleId[/rest][?query]` */
const PROXY_PATH = /^\/([^/?]+)\/([^/?]+)(\/[^?]*)?(\?.*)?$/;

/**
 * The request handler of the client listener.
 *
 * @example
 * server.on("request", createRouter({ settings, pool, authenticators: { CCM_Proxy_MutualAuth: mtls }, limits, metrics, log }));
 */
export function createRouter(deps: RouterDeps): (req: ClientRequest, res: ClientResponse) => void {
  const { settings, pool, limits, metrics, log } = deps;
  const authenticators = new Map(Object.entries(deps.authenticators).map(([k, v]) => [k.toLowerCase(), v]));
  // Label children resolved once: these counters move on every request and every body chunk.
  const bytesIn = metrics.bytes.labels({ direction: "in" });
  const bytesOut = metrics.bytes.labels({ direction: "out" });
  const results = new Map<RequestResult, { inc(): void }>();
  // Request ids: a random prefix per router and a counter (cheaper than random bytes per request).
  const idPrefix = randomBytes(4).toString("hex");
  let idCounter = 0;

  return (req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      internalError(req, res, err as Error);
    }
  };

  function internalError(req: ClientRequest, res: ClientResponse, err: Error): void {
    log.error(`Request ${req.method} ${req.url} failed inside the gateway: ${err.stack ?? err.message}`);
    if (!res.headersSent) reply(req, res, 500, "internal_error", "the gateway failed to handle the request");
    else abortResponse(res);
  }

  /** Up to authentication; goes on in `authorized` at once when the authenticator answers synchronously (a cached verdict). */
  function handle(req: ClientRequest, res: ClientResponse): void {
    const requestId = `${idPrefix}${(idCounter++).toString(36).padStart(6, "0")}`;
    const url = originForm(req.url ?? "/");
    // For log lines only: not built on the success path.
    const where = (): string => `${req.method} ${url.split("?")[0]} from ${req.socket?.remoteAddress ?? "?"} (request ${requestId})`;
    const m = PROXY_PATH.exec(url);
    const auth = m ? authenticators.get(m[1]!.toLowerCase()) : undefined;
    if (!m || !auth) {
      count("not_found");
      return reply(req, res, 404, "not_found", "no such endpoint on this gateway");
    }
    const request: RoutedRequest = { requestId, where, roleId: m[2]!, path: (m[3] ?? "/") + (m[4] ?? "") };

    const current = settings.current();
    if (!current) {
      count("not_configured");
      log.warn(`Request ${where()}: 503, no connection point has configured this instance yet`);
      return reply(req, res, 503, "not_configured", "the gateway has not been configured by a connection point yet", retryAfter());
    }

    const verdict = auth.authenticate(req);
    if (verdict instanceof Promise) {
      verdict.then((v) => authorized(req, res, request, v)).catch((err: Error) => internalError(req, res, err));
    } else {
      authorized(req, res, request, verdict);
    }
  }

  function authorized(req: ClientRequest, res: ClientResponse, r: RoutedRequest, verdict: AuthVerdict): void {
    const { where, roleId } = r;
    if (!verdict.ok) {
      count("refused");
      metrics.refusals.inc({ reason: verdict.reason });
      log.warn(`Request ${where()} refused with ${verdict.status} ${verdict.reason}: ${verdict.check} (${verdict.detail})`);
      return reply(req, res, verdict.status, verdict.reason, verdict.check, verdict.headers);
    }

    // Settings may have changed while an authentication was under way.
    const current = settings.current();
    const route = current && ROLE_ID.test(roleId) ? current.urlMap[roleId] : undefined;
    if (!route) {
      count("not_found");
      log.warn(`Request ${where()}: 404, role ${roleId} is not in the URL map`);
      return reply(req, res, 404, "unknown_role", `role ${roleId} is not served by this gateway`);
    }
    if (!route.allowCmgTraffic) {
      count("role_not_allowed");
      log.warn(`Request ${where()}: 403, role ${roleId} does not allow cloud management gateway traffic`);
      return reply(req, res, 403, "role_not_allowed", `role ${roleId} does not allow cloud management gateway traffic`);
    }

    const maxBody = route.maxBodyBytes ?? limits.maxRequestBodyBytes[route.kind];
    const declared = contentLength(req.headers["content-length"]);
    if (declared !== undefined && declared > maxBody) {
      count("too_large");
      log.warn(`Request ${where()}: 413, body of ${declared} bytes is over the ${maxBody}-byte limit of role ${roleId}`);
      return reply(req, res, 413, "body_too_large", `request bodies for this endpoint are limited to ${maxBody} bytes`);
    }

    relay(req, res, {
      where,
      maxBody,
      roleId,
      headers: tunnelRequestHeaders(req.headers, {
        method: req.method ?? "GET",
        path: r.path,
        roleId,
        requestId: r.requestId,
        identity: verdict.identity,
        clientAddress: req.socket.remoteAddress,
      }),
    });
  }

  function relay(
    req: ClientRequest,
    res: ClientResponse,
    r: { where: () => string; maxBody: number; roleId: string; headers: Record<string, unknown> },
  ): void {
    const method = req.method ?? "GET";
    const body = hasBody(req) ? new BodyRelay(req, r.maxBody, (n) => bytesIn.inc(n)) : null;
    const tried = new Set<Tunnel>();
    const avoid = new Set<string>();
    let done = false;
    let current: ClientHttp2Stream | null = null;

    const finish = (result: RequestResult): void => {
      if (done) return;
      done = true;
      count(result);
    };

    // The client went away: cancel upstream so the management point stops working for nobody.
    res.on("close", () => {
      if (!res.writableFinished) {
        if (current && !current.destroyed) current.close(NGHTTP2_CANCEL);
        finish("client_aborted");
      }
    });

    if (body) {
      body.onTooLarge = () => {
        log.warn(`Request ${r.where()}: 413, body grew past the ${r.maxBody}-byte limit of role ${r.roleId}`);
        if (current && !current.destroyed) current.close(NGHTTP2_CANCEL);
        if (!res.headersSent) {
          finish("too_large");
          reply(req, res, 413, "body_too_large", `request bodies for this endpoint are limited to ${r.maxBody} bytes`);
        } else abortResponse(res);
      };
    }

    const attempt = (): void => {
      if (done || gone(res)) return;
      const tunnel = pool.pick(tried, avoid);
      if (!tunnel) {
        finish(tried.size === 0 ? "no_tunnel" : "upstream_error");
        if (tried.size === 0) {
          log.warn(`Request ${r.where()}: 503, no connection point is connected`);
          reply(req, res, 503, "no_connection_point", "no connection point is connected to this gateway", retryAfter());
        } else {
          log.error(`Request ${r.where()}: 502, the tunnel failed and no other tunnel could take the request`);
          reply(req, res, 502, "tunnel_failed", "the connection to the site failed");
        }
        return;
      }
      tried.add(tunnel);
      let stream: ClientHttp2Stream;
      try {
        stream = tunnel.open(r.headers as never, body === null);
      } catch (err) {
        // The session is closing or gone: nothing was sent, any request may go elsewhere.
        avoid.add(tunnel.connectionPoint);
        log.warn(`Request ${r.where()}: ${tunnel.label} cannot open a stream (${(err as Error).message}); trying another`);
        metrics.failovers.inc();
        attempt();
        return;
      }
      current = stream;
      let responded = false;
      let lastError: (Error & { code?: string }) | undefined;

      const headersTimer = setTimeout(() => {
        if (responded || done) return;
        log.error(`Request ${r.where()}: 504, ${tunnel.label} gave no answer within ${limits.upstreamResponseTimeoutMs} ms`);
        finish("upstream_timeout");
        stream.close(NGHTTP2_CANCEL);
        reply(req, res, 504, "upstream_timeout", "the site did not answer in time");
      }, limits.upstreamResponseTimeoutMs);
      headersTimer.unref();

      stream.setTimeout(limits.streamIdleTimeoutMs, () => {
        log.error(`Request ${r.where()}: no data moved on ${tunnel.label} for ${limits.streamIdleTimeoutMs} ms; aborting`);
        stream.close(NGHTTP2_CANCEL);
        if (responded) abortResponse(res);
      });

      stream.on("error", (err) => {
        lastError = err;
      });

      stream.on("response", (upstream: IncomingHttpHeaders & { ":status"?: number }) => {
        if (done && !responded) return;
        responded = true;
        clearTimeout(headersTimer);
        const { status, headers } = clientResponseHeaders(upstream);
        const tunnelError = upstream[Header.error];
        if (tunnelError) {
          log.warn(`Request ${r.where()}: the connection point answered ${status} ${String(tunnelError)}${upstream[Header.netCode] ? ` (${String(upstream[Header.netCode])})` : ""}`);
        }
        if (gone(res)) return;
        res.writeHead(status, headers as never);
        stream.on("data", (chunk: Buffer) => bytesOut.inc(chunk.length));
        // stream.pipe, not stream.pipeline: pipeline waits forever for an "end" that a destroyed
        // HTTP/2 stream never emits once its readable side has seen EOF. Here "close" without
        // "end" means the response was cut short, and the client must see it cut short too.
        let ended = false;
        stream.once("end", () => {
          ended = true;
        });
        (stream as NodeJS.ReadableStream).pipe(res as NodeJS.WritableStream);
        res.once("finish", () => finish("ok"));
        stream.once("close", () => {
          if (ended) return;
          if (!gone(res)) {
            log.warn(`Request ${r.where()}: the response broke off on ${tunnel.label} (${lastError?.message ?? `stream closed with code ${stream.rstCode}`})`);
            finish("upstream_error");
            abortResponse(res);
          }
        });
      });

      stream.on("close", () => {
        clearTimeout(headersTimer);
        if (responded || done) return;
        // The tunnel failed before any response byte reached the client.
        const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || lastError?.code === "ERR_HTTP2_GOAWAY_SESSION";
        const replayable = body === null || body.replayable;
        const why = lastError?.message ?? `stream closed with code ${stream.rstCode}`;
        avoid.add(tunnel.connectionPoint);
        if (!gone(res) && replayable && (IDEMPOTENT.has(method) || refused) && tried.size < limits.maxAttempts) {
          log.warn(`Request ${r.where()}: ${tunnel.label} failed before answering (${why}); retrying on another tunnel`);
          metrics.failovers.inc();
          attempt();
          return;
        }
        log.error(`Request ${r.where()}: 502, ${tunnel.label} failed before answering (${why}) and the request cannot be retried`);
        finish("upstream_error");
        reply(req, res, 502, "tunnel_failed", "the connection to the site failed");
      });

      body?.attach(stream);
    };
    attempt();
  }

  function count(result: RequestResult): void {
    let child = results.get(result);
    if (!child) results.set(result, (child = metrics.requests.labels({ result })));
    child.inc();
  }

  function retryAfter(): Record<string, string> {
    return { "retry-after": String(limits.retryAfterSeconds) };
  }
}

/** Sends the gateway's own answer: a reason code, as JSON, and in `x-opencmg-reason`. */
function reply(req: ClientRequest, res: ClientResponse, status: number, reason: string, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || gone(res)) {
    abortResponse(res);
    return;
  }
  const body = JSON.stringify({ error: reason, message }) + "\n";
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "x-opencmg-reason": reason,
    "cache-control": "no-store",
    ...extra,
  };
  // An HTTP/1.1 request whose body was not read would leave the connection in an unknown state.
  if (req.httpVersionMajor === 1 && !req.complete) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(body);
}

function hasBody(req: ClientRequest): boolean {
  const stream = (req as Http2ServerRequest).stream as { endAfterHeaders?: boolean } | undefined;
  if (stream && req.httpVersionMajor === 2) return !stream.endAfterHeaders;
  const len = contentLength(req.headers["content-length"]);
  return (len !== undefined && len > 0) || req.headers["transfer-encoding"] !== undefined;
}

function contentLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** Absolute-form request targets (`GET https://host/path`) reduced to the path. */
function originForm(url: string): string {
  if (url.startsWith("/")) return url;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

/** True when the response can no longer be written (Http2ServerResponse has no `destroyed`). */
function gone(res: ClientResponse): boolean {
  const stream = (res as Http2ServerResponse).stream as { destroyed?: boolean } | undefined;
  return (res as ServerResponse).destroyed === true || stream?.destroyed === true;
}

/**
 * Feeds a client's request body to the current tunnel stream, with backpressure, counting bytes
 * and enforcing the size limit; keeps the first REPLAY_LIMIT bytes so the body can be sent again
 * on another tunnel after a failure.
 */
class BodyRelay {
  replayable = true;
  onTooLarge: () => void = () => {};
  private readonly kept: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private target: ClientHttp2Stream | null = null;

  constructor(
    private readonly req: ClientRequest,
    private readonly max: number,
    onBytes: (n: number) => void,
  ) {
    req.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      onBytes(chunk.length);
      if (this.bytes > this.max) {
        this.req.pause();
        this.replayable = false;
        this.onTooLarge();
        return;
      }
      if (this.replayable) {
        if (this.bytes <= REPLAY_LIMIT) this.kept.push(chunk);
        else {
          this.replayable = false;
          this.kept.length = 0;
        }
      }
      const t = this.target;
      if (t && !t.destroyed && !t.write(chunk)) {
        this.req.pause();
        t.once("drain", () => this.req.resume());
      }
    });
    req.on("end", () => {
      this.ended = true;
      if (this.target && !this.target.destroyed) this.target.end();
    });
    // Nothing flows until a tunnel stream is attached.
    req.pause();
  }

  /** Sends the body (what was kept, then the rest) to a new tunnel stream. */
  attach(target: ClientHttp2Stream): void {
    this.target = target;
    for (const c of this.kept) target.write(c);
    if (this.ended) target.end();
    else this.req.resume();
  }
}

/**
 * Cuts a response short so the client cannot mistake it for a complete one: RST_STREAM with
 * INTERNAL_ERROR on HTTP/2 (a plain destroy would send NO_ERROR, which clients read as the end),
 * the connection closed on HTTP/1.1.
 */
function abortResponse(res: ClientResponse): void {
  const stream = (res as Http2ServerResponse).stream as http2.ServerHttp2Stream | undefined;
  if (stream && typeof stream.close === "function") {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    (res as ServerResponse).destroy();
  }
}
