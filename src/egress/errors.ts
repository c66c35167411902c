/**
 * Outbound failures -> NetError with one of the platform's codes (SPEC "Error codes"), the hop
 * that failed (the proxy, or the target behind it) and a message that says what to check.
 *
 * Three sources of failures:
 *   - Node and undici errors (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, certificate errors...);
 *   - a proxy answering instead of the target: a CONNECT that is not 200, or (for `http:` targets,
 *     sent to the proxy in absolute form) an error page marked with Squid's `X-Squid-Error`;
 *   - our own connectors, which tag their errors with the hop they were dialling.
 *
 * Through a proxy the product resolves nothing but the proxy's own name, so a name failure at the
 * target hop can only be seen in the proxy's answer. Squid 4.x-6.2 have a bug (Squid bug 5294,
 * fixed in 6.3) that reports a name that does not resolve as ERR_CANNOT_FORWARD (CONNECT) or
 * ERR_READ_ERROR with errno 0 (GET) instead of ERR_DNS_FAIL; Debian 12 and RHEL 9 ship such
 * versions, so both are read as 12007 too.
 */
import { NetCode, NetError, type Hop } from "../errors.ts";
import { proxyAddress, type EgressRoute } from "./route.ts";

export interface NetErrorContext {
  route: EgressRoute;
  /** `host` or `host:port` of the target, as it goes in messages. */
  targetHost: string;
}

const HOP = Symbol.for("opencmg.egress.hop");

/** Marks an error with the hop that was being dialled when it happened (our connectors do). */
export function tagHop<E>(err: E, hop: Hop): E {
  if (err && typeof err === "object" && !(HOP in err)) {
    try {
      Object.defineProperty(err, HOP, { value: hop, enumerable: false });
    } catch {
      // a frozen error keeps its default hop
    }
  }
  return err;
}

/**
 * A proxy answered in place of the target: a CONNECT that was not 200 (`via: "connect"`), or an
 * error page the proxy made for an absolute-form request (`via: "forward"`).
 */
export class ProxyAnswerError extends Error {
  constructor(
    readonly statusCode: number,
    /** Squid's `X-Squid-Error` header, e.g. `ERR_CONNECT_FAIL 111`. */
    readonly squidError: string | undefined,
    readonly via: "connect" | "forward",
  ) {
    super(`proxy answered ${statusCode}${squidError ? ` (${squidError})` : ""} ${via === "connect" ? "to CONNECT" : "in place of the target"}`);
    this.name = "ProxyAnswerError";
  }
}

/**
 * Any outbound failure as a NetError. Errors that are not network failures (a bad argument, a
 * bug) still become one, with 12029 and the original message; `classifyNetError` leaves those out.
 *
 * @example
 * try { await egress.request(url) } catch (e) { const ne = toNetError(e, { route, targetHost: "go.microsoft.com" }); log.error(`Error = ${ne.code}`) }
 */
export function toNetError(err: unknown, ctx: NetErrorContext): NetError {
  return (
    classifyNetError(err, ctx) ??
    make(NetCode.CANNOT_CONNECT, ctx.route.mode === "proxy" ? "proxy" : "target", ctx, `unexpected failure: ${messageOf(err)}`, err)
  );
}

const DNS = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA", "ENODATA"]);
const TIMEOUT = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ESOCKETTIMEDOUT"]);
const REFUSED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "EADDRNOTAVAIL"]);
const ENDED = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_CLOSED",
  "UND_ERR_DESTROYED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);
// OpenSSL certificate verification results, as Node puts them in `code`.
const CERT = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|INVALID_CA|PATH_LENGTH_EXCEEDED|INVALID_PURPOSE|HOSTNAME_MISMATCH|ERR_TLS_|ERR_SSL_|UND_ERR_PRX_TLS)/;

/** The NetError for a network failure, or undefined when `err` is not one (a bug, a user abort). */
export function classifyNetError(err: unknown, ctx: NetErrorContext): NetError | undefined {
  if (err instanceof NetError) return err;
  const chain = flatten(err);
  const answer = chain.find((e): e is ProxyAnswerError => e instanceof ProxyAnswerError);
  if (answer) return fromProxyAnswer(answer, ctx, err);

  const codes = chain.map((e) => (e as { code?: unknown }).code).filter((c): c is string => typeof c === "string");
  const text = chain.map((e) => (e as Error).message ?? "").join(" | ");
  const tagged = chain.map((e) => (e as Record<symbol, Hop | undefined>)[HOP]).find((h) => h !== undefined);
  const proxied = ctx.route.mode === "proxy";
  const hopOr = (proxyDefault: Hop): Hop => tagged ?? (proxied ? proxyDefault : "target");

  // undici reports a proxy's 407 as an argument error (absolute form) or an aborted request (CONNECT).
  if (proxied && /Proxy Authentication Required \(407\)|Proxy response \(407\)/.test(text)) {
    return make(NetCode.PROXY_AUTH_REQUIRED, "proxy", ctx, "", err);
  }
  const tunnel = /Proxy response \((\d{3})\) !== 200/.exec(text);
  if (proxied && tunnel) return fromProxyAnswer(new ProxyAnswerError(Number(tunnel[1]), undefined, "connect"), ctx, err);

  if (codes.some((c) => DNS.has(c))) return make(NetCode.NAME_NOT_RESOLVED, hopOr("proxy"), ctx, "", err);
  const certCode = codes.find((c) => CERT.test(c)) ?? (chain.some((e) => typeof (e as { library?: unknown }).library === "string") ? "TLS" : undefined);
  if (certCode) return make(NetCode.SECURITY, hopOr("target"), ctx, certCode, err);
  if (codes.some((c) => TIMEOUT.has(c)) || chain.some((e) => (e as Error).name === "TimeoutError")) {
    return make(NetCode.TIMEOUT, hopOr("target"), ctx, codes.find((c) => TIMEOUT.has(c)) ?? "", err);
  }
  if (codes.some((c) => REFUSED.has(c))) return make(NetCode.CANNOT_CONNECT, hopOr("proxy"), ctx, codes.find((c) => REFUSED.has(c))!, err);
  if (codes.some((c) => ENDED.has(c) || c.startsWith("HPE_"))) {
    return make(NetCode.CONNECTION_ENDED, hopOr("target"), ctx, codes.find((c) => ENDED.has(c) || c.startsWith("HPE_"))!, err);
  }
  return undefined;
}

/** The NetError for a proxy that answered instead of the target (undefined: not a failure). */
export function fromProxyAnswer(a: ProxyAnswerError, ctx: NetErrorContext, cause: unknown = a): NetError | undefined {
  const [name = "", errnoText] = (a.squidError ?? "").trim().split(/\s+/);
  const errno = errnoText === undefined ? undefined : Number(errnoText);
  const detail = `${a.statusCode}${name ? ` ${a.squidError!.trim()}` : ""}`;
  if (a.statusCode === 407 || name === "ERR_CACHE_ACCESS_DENIED") return make(NetCode.PROXY_AUTH_REQUIRED, "proxy", ctx, detail, cause);
  if (name) {
    switch (name) {
      case "ERR_DNS_FAIL":
        return make(NetCode.NAME_NOT_RESOLVED, "target", ctx, detail, cause);
      case "ERR_CANNOT_FORWARD":
        // Squid bug 5294 (see the file comment); a real "no forwarding path" has nothing to retry either.
        if (!errno) return make(NetCode.NAME_NOT_RESOLVED, "target", ctx, detail, cause);
        return make(NetCode.CANNOT_CONNECT, "target", ctx, detail, cause);
      case "ERR_READ_ERROR":
        if (!errno && a.statusCode === 502) return make(NetCode.NAME_NOT_RESOLVED, "target", ctx, detail, cause);
        return make(NetCode.CONNECTION_ENDED, "target", ctx, detail, cause);
      case "ERR_CONNECT_FAIL":
        return make(errno === 110 ? NetCode.TIMEOUT : NetCode.CANNOT_CONNECT, "target", ctx, detail, cause);
      case "ERR_READ_TIMEOUT":
      case "ERR_LIFETIME_EXP":
        return make(NetCode.TIMEOUT, "target", ctx, detail, cause);
      case "ERR_ZERO_SIZE_OBJECT":
      case "ERR_WRITE_ERROR":
        return make(NetCode.CONNECTION_ENDED, "target", ctx, detail, cause);
      case "ERR_SECURE_CONNECT_FAIL":
        return make(NetCode.SECURITY, "target", ctx, detail, cause);
      default:
        // ERR_ACCESS_DENIED and the like: the proxy itself refuses to take us there.
        return make(NetCode.CANNOT_CONNECT, "proxy", ctx, detail, cause, "denied");
    }
  }
  if (a.via === "forward") return undefined; // an ordinary response of the target
  if (a.statusCode === 504) return make(NetCode.TIMEOUT, "target", ctx, detail, cause);
  if (a.statusCode === 502 || a.statusCode === 503) return make(NetCode.CANNOT_CONNECT, "target", ctx, detail, cause);
  return make(NetCode.CANNOT_CONNECT, "proxy", ctx, detail, cause, "denied");
}

function make(code: NetCode, hop: Hop, ctx: NetErrorContext, detail: string, cause: unknown, variant?: "denied"): NetError {
  const proxy = ctx.route.mode === "proxy" ? proxyAddress(ctx.route) : undefined;
  const target = ctx.targetHost;
  const host = hop === "proxy" && proxy ? proxy : target;
  const via = proxy ? ` through proxy ${proxy}` : "";
  const d = detail ? ` (${detail})` : "";
  let text: string;
  switch (code) {
    case NetCode.NAME_NOT_RESOLVED:
      text =
        hop === "proxy"
          ? `the name of proxy ${proxy} could not be resolved${d}: check the proxy server name in the server's proxy configuration and this server's DNS`
          : proxy
            ? `proxy ${proxy} could not resolve ${target}${d}: check the name, and the proxy's DNS`
            : `the name ${target} could not be resolved${d}: check the name, and this server's DNS`;
      break;
    case NetCode.CANNOT_CONNECT:
      text =
        hop === "proxy"
          ? variant === "denied"
            ? `proxy ${proxy} refused to connect to ${target}${d}: check that the proxy's rules allow this endpoint (see the endpoint list)`
            : `proxy ${proxy} refused the connection${d}: check that the proxy service is running and the port in the server's proxy configuration`
          : proxy
            ? `proxy ${proxy} could not connect to ${target}${d}: check that the endpoint is up and that the proxy can reach it`
            : `${target} refused the connection${d}: check that the endpoint is up and that the firewall allows this server to reach it`;
      break;
    case NetCode.TIMEOUT:
      text =
        hop === "proxy"
          ? `proxy ${proxy} did not answer in time${d}: check that the proxy is reachable from this server`
          : `${target} did not answer in time${via}${d}: check that the endpoint is up${proxy ? " and that the proxy can reach it" : " and reachable from this server"}`;
      break;
    case NetCode.CONNECTION_ENDED:
      text =
        hop === "proxy"
          ? `proxy ${proxy} ended the connection${d}: check the proxy's logs and limits`
          : `the connection to ${target}${via} was ended before the answer was complete${d}: retry, then check the endpoint${proxy ? " and the proxy's logs and limits" : ""}`;
      break;
    case NetCode.SECURITY:
      text =
        `TLS with ${hop === "proxy" ? `proxy ${proxy}` : target}${hop === "proxy" ? "" : via} failed${d}: check the endpoint's certificate (name, expiry, issuer), ` +
        `the trusted root certificates, and whether something on the path inspects TLS`;
      break;
    case NetCode.PROXY_AUTH_REQUIRED:
      text =
        ctx.route.mode === "proxy" && ctx.route.credentials
          ? `proxy ${proxy} rejected the proxy account ${ctx.route.credentials.username} (407): check the account's user name and password in the server's proxy configuration`
          : `proxy ${proxy} requires authentication (407): set a proxy account in the server's proxy configuration`;
      break;
  }
  return new NetError(code, hop, host, text, { cause });
}

/** err, its causes and (for AggregateError) its members, breadth first, bounded. */
function flatten(err: unknown): unknown[] {
  const out: unknown[] = [];
  const queue = [err];
  while (queue.length > 0 && out.length < 16) {
    const e = queue.shift();
    if (!e || typeof e !== "object" || out.includes(e)) continue;
    out.push(e);
    const c = (e as { cause?: unknown }).cause;
    if (c) queue.push(c);
    const members = (e as { errors?: unknown }).errors;
    if (Array.isArray(members)) queue.push(...members);
  }
  return out;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
