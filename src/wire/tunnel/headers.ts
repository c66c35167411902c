/**
 * Header rewriting on the data path: what a client sent becomes what the management point sees,
 * and what the management point answered becomes what the client sees. Hop-by-hop headers stop at
 * each hop (RFC 9110 section 7.6.1), and only the gateway may speak for the client's identity.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { Header, RESERVED_HEADER_PREFIXES } from "./protocol.ts";

/** Connection-specific headers: never relayed (HTTP/2 forbids most of them outright). */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // HTTP/1.1 `Host` travels as HTTP/2 `:authority`; the gateway answered `Expect: 100-continue` itself.
  "host",
  "expect",
  "http2-settings",
]);

/** Who the client is, as the gateway authenticated it. */
export interface ClientIdentity {
  /** How the client proved it: a client certificate now, site-issued tokens later. */
  method: "mtls" | "token";
  /** SHA-1 of the client certificate, uppercase hex (token: the token's subject key id, if any). */
  thumbprint: string;
  /** Subject, RFC 4514 order ("CN=PC-001, O=Contoso"). */
  subject: string;
  /** Subject alternative names as "DNS:pc-001.contoso.com", "IP Address:10.0.0.5", ... */
  sans: string[];
  /** Token identities: which token and whose (client ID, bulk token ID, or the directory's device name). */
  token?: {
    type: "client" | "bulk" | "oidc";
    id: string;
    /** Directory ID tokens: the token's one-use key (`jti:...` or `sha256:...`) and its `exp` (seconds). */
    use?: string;
    expiresAt?: number;
  };
  /** SHA-1 of the trusted root the certificate chained to (mtls), uppercase hex: the site records it for the lockout check of `cmg update`. */
  root?: string;
}

/** Names listed in `Connection: a, b` are hop-by-hop too. */
const NO_TOKENS: ReadonlySet<string> = new Set();

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : value ? [value] : []) {
    for (const t of v.split(",")) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

function reserved(name: string): boolean {
  // Per header on every request: a first-letter test before the prefixes ("x-opencmg-", "opencmg-").
  const c = name.charCodeAt(0);
  if (c !== 0x78 /* x */ && c !== 0x6f /* o */) return false;
  for (const p of RESERVED_HEADER_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

/**
 * Header values must be visible ASCII; subjects and names may not be. Percent-encodes anything
 * outside 0x20..0x7E, and `%` itself, as UTF-8 (decodeURIComponent reverses it).
 */
export function encodeHeaderValue(s: string): string {
  return s.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}

/** Identities are cached verdicts shared by many requests: their header values are encoded once. */
const encodedIdentities = new WeakMap<ClientIdentity, { subject: string; sans: string }>();

function encodedIdentity(identity: ClientIdentity): { subject: string; sans: string } {
  let e = encodedIdentities.get(identity);
  if (!e) {
    e = { subject: encodeHeaderValue(identity.subject), sans: encodeHeaderValue(identity.sans.join(", ")) };
    encodedIdentities.set(identity, e);
  }
  return e;
}

/**
 * Headers of the tunnel stream for one client request: the client's end-to-end headers, minus
 * hop-by-hop and reserved ones, plus the routing and identity headers.
 *
 * @example
 * session.request(tunnelRequestHeaders(req.headers, { method: "GET", path: "/SMS_MP/.sms_aut?MPLIST", ... }))
 */
export function tunnelRequestHeaders(
  incoming: IncomingHttpHeaders,
  ctx: {
    method: string;
    path: string;
    roleId: string;
    requestId: string;
    identity: ClientIdentity;
    clientAddress: string | undefined;
  },
): OutgoingHttpHeaders {
  const drop = connectionTokens(incoming.connection);
  const authority = incoming[":authority"] ?? incoming.host;
  const out: OutgoingHttpHeaders = {
    ":method": ctx.method,
    ":path": ctx.path,
    ":scheme": "https",
    ":authority": typeof authority === "string" ? authority : "gateway",
  };
  // for...in over the parsed headers (own, plain data properties): no entries array per request.
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || HOP_BY_HOP.has(name) || drop.has(name) || reserved(name)) continue;
    // x-forwarded-* from the internet are not trusted either: the gateway writes its own below.
    if (name === "x-forwarded-for" || name === "x-forwarded-proto" || name === "x-forwarded-host" || name === "forwarded") continue;
    // A token and its proof were checked here; they go no further (secrets travel no farther than needed).
    if (ctx.identity.method === "token" && (name === "authorization" || name === "dpop")) continue;
    out[name] = value;
  }
  out[Header.role] = ctx.roleId;
  out[Header.requestId] = ctx.requestId;
  out[Header.clientAuth] = ctx.identity.method;
  out[Header.clientThumbprint] = ctx.identity.thumbprint;
  const encoded = encodedIdentity(ctx.identity);
  out[Header.clientSubject] = encoded.subject;
  out[Header.clientSans] = encoded.sans;
  if (ctx.identity.token) out[Header.clientToken] = encodeHeaderValue(`${ctx.identity.token.type} ${ctx.identity.token.id}`);
  if (ctx.identity.token?.use && ctx.identity.token.expiresAt !== undefined) out[Header.clientTokenUse] = encodeHeaderValue(`${ctx.identity.token.expiresAt} ${ctx.identity.token.use}`);
  if (ctx.identity.root) out[Header.clientRoot] = ctx.identity.root;
  if (ctx.clientAddress) out["x-forwarded-for"] = ctx.clientAddress;
  out["x-forwarded-proto"] = "https";
  if (typeof authority === "string") out["x-forwarded-host"] = authority;
  return out;
}

/**
 * Response headers for the client: the upstream's headers minus pseudo, hop-by-hop and reserved
 * ones. Returns the status separately.
 */
export function clientResponseHeaders(upstream: Readonly<Record<string, string | string[] | number | undefined>>): { status: number; headers: OutgoingHttpHeaders } {
  const drop = connectionTokens(upstream.connection as string | string[] | undefined);
  const headers: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || HOP_BY_HOP.has(name) || drop.has(name) || reserved(name)) continue;
    headers[name] = value;
  }
  return { status: Number(upstream[":status"] ?? 502), headers };
}

/**
 * Strips hop-by-hop headers from a backend response before it goes on an HTTP/2 stream (used by
 * the connection point; reserved names are kept, the gateway removes them).
 */
export function endToEndHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const drop = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const rawName in headers) {
    const value = headers[rawName];
    const name = rawName.toLowerCase();
    if (value === undefined || name.startsWith(":") || HOP_BY_HOP.has(name) || drop.has(name)) continue;
    out[name] = value;
  }
  return out;
}
