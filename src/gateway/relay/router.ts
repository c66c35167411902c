/**
 * The router: from a client request to a tunnel stream and back.
 *
 *   /<scheme>/<roleId>/<path>     scheme: CCM_Proxy_MutualAuth (client certificates); the
 *                                 authenticator for a scheme is looked up, never hard-wired
 *
 * Order of checks: an HTTP/1.0, 1.1 or 2 request (else 505; HTTP/1.1 with a Host header, else 400),
 * a path that stays under the role (else 400 bad_path; role-path.ts), settings present (else 503), client authenticated (else 403 with the reason),
 * role known (else 404), role allows CMG traffic (else 403; nothing goes on-premises), body size
 * (else 413), the identity's and the address's fair share of requests in progress (else 429;
 * fairness.ts), a ready tunnel (else 503 + Retry-After). Then relay.ts relays the request with
 * failover. Each request's end is published on the observe channels (trace.ts), where metrics and
 * log lines pick it up.
 */
import { randomBytes } from "node:crypto";
import http2, { type Http2ServerRequest, type Http2Session } from "node:http2";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import type { Source } from "../../observe/channels.ts";
import type { AuthVerdict, ClientAuthenticator, ClientRequest } from "../auth/client-cert.ts";
import type { GatewayLimits } from "../config.ts";
import { tunnelRequestHeaders } from "../../wire/tunnel/headers.ts";
import { CONNECTION_POINT_H2, headerListSize } from "../../wire/tunnel/h2.ts";
import { ROLE_ID } from "../../wire/tunnel/protocol.ts";
import { checkRolePath } from "../../wire/tunnel/role-path.ts";
import { REFUSAL_HEADERS } from "../../wire/refusals.ts";
import type { SettingsStore } from "../settings-store.ts";
import type { FairShare } from "../fairness.ts";
import type { TunnelPool } from "../tunnels/tunnel-pool.ts";
import { contentLength, originForm, parseProxyPath, requestLineProblem } from "./checks.ts";
import { Relay } from "./relay.ts";
import { abortResponse, gone, reply, type ClientResponse } from "./reply.ts";
import { RequestTrace } from "./trace.ts";

export type { ClientResponse } from "./reply.ts";

export interface RouterDeps {
  /** The instance: requests are published with it (metrics and logs subscribe per instance). */
  source: Source;
  settings: SettingsStore;
  pool: TunnelPool;
  /** Authenticator by URL scheme segment, e.g. { CCM_Proxy_MutualAuth: mtls }. Matched case-insensitively. */
  authenticators: Record<string, ClientAuthenticator>;
  limits: GatewayLimits;
  /** CMGHttpHandler.log */
  log: ComponentLog;
  /** Requests in progress and upload bytes per identity and per address (fairness.ts); none: no quotas. */
  fairShare?: FairShare;
  /** True for an HTTP/2 client session cut off for stream abuse (abuse.ts): its streams are refused, never relayed. */
  refusesSession?: (session: Http2Session) => boolean;
}

/** A request on its way through the router, once its path is parsed. */
interface RoutedRequest {
  trace: RequestTrace;
  roleId: string;
  /** Path and query for the role's internal URL. */
  path: string;
}

/**
 * The request handler of the client listener.
 *
 * @example
 * server.on("request", createRouter({ source, settings, pool, authenticators: { CCM_Proxy_MutualAuth: mtls }, limits, log }));
 */
export function createRouter(deps: RouterDeps): (req: ClientRequest, res: ClientResponse) => void {
  const { settings, limits, log } = deps;
  const authenticators = new Map(Object.entries(deps.authenticators).map(([k, v]) => [k.toLowerCase(), v]));
  // Request ids: a random prefix per router and a counter (cheaper than random bytes per request).
  const idPrefix = randomBytes(4).toString("hex");
  let idCounter = 0;
  const retryAfter = (): Record<string, string> => ({ "retry-after": String(limits.retryAfterSeconds) });

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
    // A connection cut off for stream abuse gets nothing relayed: its streams are refused at once
    // (REFUSED_STREAM: not processed), the cheapest answer there is.
    const stream = (req as Http2ServerRequest).stream;
    if (stream && deps.refusesSession?.(stream.session as Http2Session)) {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const requestId = `${idPrefix}${(idCounter++).toString(36).padStart(6, "0")}`;
    const url = originForm(req.url ?? "/");
    const q = url.indexOf("?");
    const trace = new RequestTrace(deps.source, requestId, req.method ?? "GET", q < 0 ? url : url.slice(0, q), req.socket?.remoteAddress);
    if (limits.traceQuery && q >= 0) trace.query = url.slice(q);
    const line = requestLineProblem(req);
    if (line) {
      trace.refused("refused", line.status, line.reason);
      log.warn(`Request ${trace.where()}: ${line.status} ${line.reason}, ${line.detail}; not relayed`);
      return reply(req, res, line.status, line.reason, line.detail, { connection: "close" });
    }
    const p = parseProxyPath(url);
    const auth = p ? authenticators.get(p.scheme.toLowerCase()) : undefined;
    if (!p || !auth) {
      trace.refused("not_found", 404, "not_found");
      return reply(req, res, 404, "not_found", "no such endpoint on this gateway");
    }
    // Before anything else about the role: a path that would leave the role's root never goes on-premises.
    const pq = p.path.indexOf("?");
    const checked = checkRolePath(pq < 0 ? p.path : p.path.slice(0, pq));
    if (!checked.ok) {
      trace.refused("refused", 400, "bad_path", p.roleId);
      log.warn(`Request ${trace.where()}: 400 bad_path, ${checked.detail}; not relayed`);
      return reply(req, res, 400, "bad_path", `${checked.detail}; paths must stay under the role`);
    }
    const request: RoutedRequest = { trace, roleId: p.roleId, path: checked.path + (pq < 0 ? "" : p.path.slice(pq)) };

    if (!settings.current()) {
      trace.refused("not_configured", 503, "not_configured", p.roleId);
      log.warn(`Request ${trace.where()}: 503, no connection point has configured this instance yet`);
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
    const { trace, roleId } = r;
    if (!verdict.ok) {
      trace.refused("refused", verdict.status, verdict.reason, roleId);
      log.warn(`Request ${trace.where()} refused with ${verdict.status} ${verdict.reason}: ${verdict.check} (${verdict.detail})${verdict.cause ? `; cause ${verdict.cause}` : ""}`);
      // The client learns the reason, the cause and the check's name; the detail stays in the log.
      return reply(req, res, verdict.status, verdict.reason, verdict.check, { ...verdict.headers, ...(verdict.cause ? { [REFUSAL_HEADERS.cause]: verdict.cause } : {}) });
    }

    // What the authenticator tells the client on success (a new DPoP nonce): on whatever answer it gets.
    if (verdict.headers) for (const [k, v] of Object.entries(verdict.headers)) res.setHeader(k, v);
    // Settings may have changed while an authentication was under way.
    const current = settings.current();
    const route = current && ROLE_ID.test(roleId) ? current.urlMap[roleId] : undefined;
    if (!route) {
      trace.refused("not_found", 404, "unknown_role", roleId);
      log.warn(`Request ${trace.where()}: 404, role ${roleId} is not in the URL map`);
      return reply(req, res, 404, "unknown_role", `role ${roleId} is not served by this gateway`);
    }
    if (!route.allowCmgTraffic) {
      trace.refused("role_not_allowed", 403, "role_not_allowed", roleId);
      log.warn(`Request ${trace.where()}: 403, role ${roleId} does not allow cloud management gateway traffic`);
      return reply(req, res, 403, "role_not_allowed", `role ${roleId} does not allow cloud management gateway traffic`);
    }

    const maxBody = route.maxBodyBytes ?? limits.maxRequestBodyBytes[route.kind];
    const declared = contentLength(req.headers["content-length"]);
    if (declared !== undefined && declared > maxBody) {
      trace.refused("too_large", 413, "body_too_large", roleId);
      log.warn(`Request ${trace.where()}: 413, body of ${declared} bytes is over the ${maxBody}-byte limit of role ${roleId}`);
      return reply(req, res, 413, "body_too_large", `request bodies for this endpoint are limited to ${maxBody} bytes`);
    }

    const clientHeaders = countHeaders(req.rawHeaders);
    if (clientHeaders > limits.maxHeaderCount) return headersTooLarge(req, res, r, `${clientHeaders} header fields, over the limit of ${limits.maxHeaderCount}`);
    const headers = tunnelRequestHeaders(req.headers, {
      method: req.method ?? "GET",
      path: r.path,
      roleId,
      requestId: trace.requestId,
      identity: verdict.identity,
      clientAddress: trace.clientAddress,
    });
    // With the gateway's own headers added, the request must still fit what the connection point
    // accepts: refused there, it would fail on every tunnel.
    const size = headerListSize(headers);
    if (size.bytes > CONNECTION_POINT_H2.maxHeaderListSize || size.count > CONNECTION_POINT_H2.maxHeaderListPairs) {
      return headersTooLarge(req, res, r, `${size.count} header fields of ${size.bytes} bytes with the gateway's own, over the connection point's limits (${CONNECTION_POINT_H2.maxHeaderListPairs} fields, ${CONNECTION_POINT_H2.maxHeaderListSize} bytes)`);
    }
    // Last before relaying: the identity's and the address's share of requests in progress.
    const share = deps.fairShare?.admit(verdict.identity, trace.clientAddress);
    if (share && "reason" in share) {
      // Logged by the fair share's observer, throttled: a misbehaving client would flood the log.
      trace.refused("refused", 429, share.reason, roleId);
      return reply(req, res, 429, share.reason, `too many requests of this ${share.scope === "client" ? "client" : "address"} in progress at once; retry later`, { "retry-after": "1" });
    }
    if (share) {
      if (gone(res)) share.release();
      else res.once("close", () => share.release());
    }
    new Relay(deps, req, res, trace, { roleId, roleKind: route.kind, maxBody, client: verdict.identity, headers, ...(share ? { throttle: share.throttle } : {}) }).start();
  }

  function headersTooLarge(req: ClientRequest, res: ClientResponse, r: RoutedRequest, why: string): void {
    r.trace.refused("too_large", 431, "headers_too_large", r.roleId);
    log.warn(`Request ${r.trace.where()}: 431, ${why}; not relayed`);
    reply(req, res, 431, "headers_too_large", "the request header fields are too large");
  }
}

/** Header fields in a raw header list (name, value, name, value, ...), pseudo-headers left out. */
function countHeaders(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (!raw[i]!.startsWith(":")) n++;
  return n;
}
