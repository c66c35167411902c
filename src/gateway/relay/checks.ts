/**
 * What the router reads off a client request before relaying it: the route in the path, the
 * declared body size, whether a body follows.
 *
 *   /<scheme>/<roleId>/<path>     scheme: CCM_Proxy_MutualAuth (client certificates)
 */
import type { Http2ServerRequest } from "node:http2";
import type { ClientRequest } from "../auth/client-cert.ts";

/** `/scheme/roleId[/rest][?query]` */
const PROXY_PATH = /^\/([^/?]+)\/([^/?]+)(\/[^?]*)?(\?.*)?$/;

export interface ProxyPath {
  /** URL scheme segment, e.g. CCM_Proxy_MutualAuth. */
  scheme: string;
  roleId: string;
  /** Path and query for the role's internal URL. */
  path: string;
}

/**
 * The scheme, role and inner path of a gateway URL, or null when it is not one.
 *
 * @example
 * parseProxyPath("/CCM_Proxy_MutualAuth/72057594037927941/SMS_MP/.sms_aut?MPLIST")
 * // { scheme: "CCM_Proxy_MutualAuth", roleId: "72057594037927941", path: "/SMS_MP/.sms_aut?MPLIST" }
 */
export function parseProxyPath(url: string): ProxyPath | null {
  const m = PROXY_PATH.exec(url);
  if (!m) return null;
  return { scheme: m[1]!, roleId: m[2]!, path: (m[3] ?? "/") + (m[4] ?? "") };
}

/** Absolute-form request targets (`GET https://host/path`) reduced to the path. */
export function originForm(url: string): string {
  if (url.startsWith("/")) return url;
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

/** True when a request body follows the headers. */
export function hasBody(req: ClientRequest): boolean {
  const stream = (req as Http2ServerRequest).stream as { endAfterHeaders?: boolean } | undefined;
  if (stream && req.httpVersionMajor === 2) return !stream.endAfterHeaders;
  const len = contentLength(req.headers["content-length"]);
  return (len !== undefined && len > 0) || req.headers["transfer-encoding"] !== undefined;
}

/** The declared content-length, or undefined when absent or not a plain number. */
export function contentLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** Why a request line is refused before routing, or null. */
export interface RequestLineProblem {
  status: number;
  reason: string;
  detail: string;
}

/**
 * HTTP/1.0, HTTP/1.1 (with a Host header, RFC 9112 section 3.2) and HTTP/2 only: an HTTP/0.9
 * request line (no version) or an unknown version is refused. Node answers a Host-less HTTP/1.1
 * request itself once the listener sets requireHostHeader; this is the same rule for any path
 * that would bypass it.
 *
 * @example
 * requestLineProblem(req) // null, or { status: 505, reason: "http_version", detail: "..." }
 */
export function requestLineProblem(req: ClientRequest): RequestLineProblem | null {
  const v = req.httpVersion;
  if (v === "2.0" && (req as Http2ServerRequest).stream) return null;
  if (v !== "1.0" && v !== "1.1") {
    return { status: 505, reason: "http_version", detail: `HTTP/${v} is not served here (HTTP/1.0, HTTP/1.1 and HTTP/2 are)` };
  }
  if (v === "1.1" && !req.headers.host) return { status: 400, reason: "missing_host", detail: "an HTTP/1.1 request needs a Host header" };
  return null;
}
