/**
 * The connection point's forwarder: one tunnel stream (a client request relayed by the gateway)
 * becomes one request to the internal URL of the management point or software update point, and
 * its response streams back on the same tunnel stream. The role must be in the URL map and allow
 * CMG traffic here too (defence in depth: the gateway already checked, but the gateway is on the
 * internet side).
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { PassThrough } from "node:stream";
import type { Dispatcher } from "undici";
import { NetCode } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { endToEndHeaders, HOP_BY_HOP } from "../gateway/headers.ts";
import { Header, type CmgSettings, type TunnelErrorCode } from "../gateway/protocol.ts";

/** Where a role's requests go on-premises. */
export interface BackendTarget {
  /** Internal URL of the role, e.g. "https://mp1.contoso.local" or "http://10.0.0.5:8080/base". */
  url: string;
}

export interface ForwarderRoutes {
  settings: CmgSettings;
  backends: ReadonlyMap<string, BackendTarget>;
}

/** How a relayed request ended, as the forwarder saw it. */
export type ForwardResult = "ok" | "refused" | "backend_error" | "cancelled";

export interface ForwarderDeps {
  routes: () => ForwarderRoutes;
  /** undici dispatcher for the backends (site CA trusted, keep-alive). */
  dispatcher: Dispatcher;
  /** SMS_Cloud_ProxyConnector.log */
  log: ComponentLog;
  /** Called once per request when it ends. */
  record: (roleId: string, result: ForwardResult) => void;
  /** Backend must send response headers within this (default 60 s). */
  headersTimeoutMs?: number;
  /** Backend body must not stall longer than this (default 120 s). */
  bodyTimeoutMs?: number;
}

const { NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * @example
 * session.on("stream", createForwarder({ routes, dispatcher, log, traffic }));
 */
export function createForwarder(deps: ForwarderDeps): (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => void {
  const headersTimeout = deps.headersTimeoutMs ?? 60_000;
  const bodyTimeout = deps.bodyTimeoutMs ?? 120_000;

  return (stream, headers, flags) => {
    const roleId = String(headers[Header.role] ?? "");
    const requestId = String(headers[Header.requestId] ?? "-");
    const method = String(headers[":method"] ?? "GET");
    const path = String(headers[":path"] ?? "/");
    const where = `${method} ${path.split("?")[0]} for role ${roleId} (request ${requestId})`;
    stream.on("error", () => {}); // a cancelled stream errors; the outcome is handled below

    const { settings, backends } = deps.routes();
    const route = settings.urlMap[roleId];
    if (!route) return refuse(404, "unknown_role", `role ${roleId} is not in the URL map`);
    if (!route.allowCmgTraffic) return refuse(403, "role_not_allowed", `role ${roleId} does not allow cloud management gateway traffic`);
    const backend = backends.get(roleId);
    if (!backend) return refuse(502, "no_backend", `role ${roleId} has no internal URL`);

    let base: URL;
    try {
      base = new URL(backend.url);
    } catch {
      return refuse(502, "no_backend", `role ${roleId} has an invalid internal URL`);
    }
    if (!path.startsWith("/")) return refuse(400, "bad_request", `request path must start with "/"`);
    const prefix = base.pathname.replace(/\/+$/, "");

    const abort = new AbortController();
    let finished = false;
    stream.once("close", () => {
      // A tunnel stream that closes before the whole response went out was cancelled by the
      // gateway (client gone) or broke: stop the backend request too.
      if (!finished && !stream.writableFinished) abort.abort();
    });

    const hasBody = (flags & NGHTTP2_FLAG_END_STREAM) === 0 && !stream.readableEnded;
    let body: PassThrough | undefined;
    if (hasBody) {
      // undici destroys a stream body once sent; the tunnel stream must live on for the response.
      body = new PassThrough({ highWaterMark: 64 * 1024 });
      stream.pipe(body);
    }

    deps.dispatcher
      .stream(
        {
          origin: base.origin,
          path: prefix + path,
          method: method as Dispatcher.HttpMethod,
          headers: backendHeaders(headers),
          body,
          signal: abort.signal,
          headersTimeout,
          bodyTimeout,
        },
        ({ statusCode, headers: h }) => {
          if (!stream.destroyed) stream.respond({ ":status": statusCode, ...endToEndHeaders(h) });
          return stream;
        },
      )
      .then(
        () => {
          finished = true;
          deps.record(roleId, "ok");
        },
        (err: Error & { code?: string }) => {
          finished = true;
          if (abort.signal.aborted) return deps.record(roleId, "cancelled"); // the gateway cancelled (client went away)
          // Backends are on-premises and reached directly, never through the proxy.
          const net = toNetError(err, { route: { mode: "direct" }, targetHost: base.host });
          deps.record(roleId, "backend_error");
          deps.log.warn(`Request ${where} to ${base.origin}: ${net.message} (${net.code})`);
          if (!stream.headersSent && !stream.destroyed) {
            const timeout = net.code === NetCode.TIMEOUT;
            sendError(timeout ? 504 : 502, timeout ? "backend_timeout" : "backend_unreachable", net.message, net.code);
          } else if (!stream.destroyed) {
            stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          }
        },
      );

    function refuse(status: number, code: TunnelErrorCode, message: string): void {
      deps.record(roleId, "refused");
      deps.log.warn(`Request ${where} refused: ${status} ${code}: ${message}`);
      sendError(status, code, message);
    }

    function sendError(status: number, code: TunnelErrorCode, message: string, netCode?: number): void {
      if (stream.destroyed || stream.headersSent) return;
      const text = JSON.stringify({ error: code, message }) + "\n";
      stream.respond({
        ":status": status,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
        [Header.error]: code,
        ...(netCode ? { [Header.netCode]: String(netCode) } : {}),
      });
      stream.end(text);
      // The gateway may still be sending a request body nobody will read.
      if (!stream.readableEnded) stream.resume();
    }
  };
}

/** Headers for the backend: end-to-end ones, identity included, minus tunnel-internal ones. */
function backendHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || name.startsWith(":") || HOP_BY_HOP.has(name)) continue;
    if (name === Header.role || name === Header.requestId) continue;
    out[name] = value;
  }
  out["x-opencmg-request-id"] = String(h[Header.requestId] ?? "");
  return out;
}
