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
