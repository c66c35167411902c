/**
 * The connection point's forwarder: one tunnel stream (a client request relayed by the gateway)
 * becomes one request to the internal URL of the management point or software update point, and
 * its response streams back on the same tunnel stream. The role must be in the URL map and allow
 * CMG traffic here too (defence in depth: the gateway already checked, but the gateway is on the
 * internet side), and the path must stay under the role's internal URL (role-path.ts).
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { PassThrough } from "node:stream";
import type { Dispatcher } from "undici";
import { NetCode } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { endToEndHeaders, HOP_BY_HOP } from "../wire/tunnel/headers.ts";
import { Header, type CmgSettings, type TunnelErrorCode } from "../wire/tunnel/protocol.ts";
import { checkRolePath, staysUnder } from "../wire/tunnel/role-path.ts";

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

/** What one relayed request moved: body bytes each way, for the traffic report. */
export interface ForwardUsage {
  /** The instance ("host:port") whose tunnel carried it. */
  gateway: string;
  /** The role's kind in the URL map ("mp", "sup"; "-" when the role is not in it). */
  kind: string;
  /** Answer body bytes (the backend's, or the error this side sent). */
  bytesToClient: number;
  /** Request body bytes. */
  bytesFromClient: number;
}

export interface ForwarderDeps {
  routes: () => ForwarderRoutes;
  /** undici dispatcher for the backends (site CA trusted, keep-alive). */
  dispatcher: Dispatcher;
  /** SMS_Cloud_ProxyConnector.log */
  log: ComponentLog;
  /**
   * Called once per request when it ends: its role, how it ended, its bytes, instance and role
   * kind ("-" when the role is not in the URL map), and its duration from the stream's arrival.
   */
  record: (roleId: string, result: ForwardResult, usage: ForwardUsage, seconds: number) => void;
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
export function createForwarder(deps: ForwarderDeps): (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, gateway?: string) => void {
  const headersTimeout = deps.headersTimeoutMs ?? 60_000;
  const bodyTimeout = deps.bodyTimeoutMs ?? 120_000;

  return (stream, headers, flags, gateway = "-") => {
    const started = performance.now();
    const roleId = String(headers[Header.role] ?? "");
    const requestId = String(headers[Header.requestId] ?? "-");
    const method = String(headers[":method"] ?? "GET");
    const path = String(headers[":path"] ?? "/");
    // Only needed for log lines: not built on the success path.
    const where = (): string => `${method} ${path.split("?")[0]} for role ${roleId} (request ${requestId})`;
    stream.on("error", () => {}); // a cancelled stream errors; the outcome is handled below

    const { settings, backends } = deps.routes();
    const route = settings.urlMap[roleId];
    const usage: ForwardUsage = { gateway, kind: route?.kind ?? "-", bytesToClient: 0, bytesFromClient: 0 };
    const record = (result: ForwardResult): void => deps.record(roleId, result, usage, (performance.now() - started) / 1000);
    if (!route) return refuse(404, "unknown_role", `role ${roleId} is not in the URL map`);
    if (!route.allowCmgTraffic) return refuse(403, "role_not_allowed", `role ${roleId} does not allow cloud management gateway traffic`);
    const backend = backends.get(roleId);
    if (!backend) return refuse(502, "no_backend", `role ${roleId} has no internal URL`);

    const base = parsedBackend(backend);
    if (!base) return refuse(502, "no_backend", `role ${roleId} has an invalid internal URL`);
    if (!path.startsWith("/")) return refuse(400, "bad_request", `request path must start with "/"`);
    // The gateway checked the path; checked again here, on the joined URL the role will see.
    const q = path.indexOf("?");
    const checked = checkRolePath(q < 0 ? path : path.slice(0, q));
    if (!checked.ok) return refuse(400, "bad_path", `${checked.detail}; paths must stay under the role's internal URL`);
    const target = base.prefix + checked.path + (q < 0 ? "" : path.slice(q));
    if (!staysUnder(base.prefix, base.prefix + checked.path)) {
      return refuse(400, "bad_path", `the joined path leaves the role's internal URL path "${base.prefix || "/"}"`);
    }

    const hasBody = (flags & NGHTTP2_FLAG_END_STREAM) === 0 && !stream.readableEnded;
    let body: PassThrough | undefined;
    if (hasBody) {
      // undici destroys a stream body once sent; the tunnel stream must live on for the response.
      body = new PassThrough({ highWaterMark: 64 * 1024 });
      relayBody(stream, body, usage);
    }

    // undici's dispatch API, not request()/stream(): one handler object per request and no
    // promise, AbortSignal or intermediate stream on the hot path.
    const handler = new BackendResponseHandler(stream, usage, {
      done: (result) => record(result),
      failed: (err) => {
        // Backends are on-premises and reached directly, never through the proxy.
        const net = toNetError(err, { route: { mode: "direct" }, targetHost: base.host });
        record("backend_error");
        deps.log.warn(`Request ${where()} to ${base.origin}: ${net.message} (${net.code})`);
        if (!stream.headersSent && !stream.destroyed) {
          const timeout = net.code === NetCode.TIMEOUT;
          sendError(timeout ? 504 : 502, timeout ? "backend_timeout" : "backend_unreachable", net.message, net.code);
        } else if (!stream.destroyed) {
          stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
      },
    });
    deps.dispatcher.dispatch(
      {
        origin: base.origin,
        path: target,
        method: method as Dispatcher.HttpMethod,
        headers: backendHeaders(headers),
        body: body ?? null,
        headersTimeout,
        bodyTimeout,
      },
      handler,
    );

    function refuse(status: number, code: TunnelErrorCode, message: string): void {
      deps.log.warn(`Request ${where()} refused: ${status} ${code}: ${message}`);
      sendError(status, code, message);
      record("refused");
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
      usage.bytesToClient += Buffer.byteLength(text);
      // The gateway may still be sending a request body nobody will read.
      if (!stream.readableEnded) stream.resume();
    }
  };
}

/**
 * The request body from the tunnel stream to the backend, with backpressure. Only a clean end of
 * the stream (END_STREAM) ends the body; a reset (the client went away, the body passed its limit
 * at the gateway) destroys it, so the backend sees an aborted request, never a complete truncated
 * one. (A destroyed Http2Stream may still emit "end": its _read pushes null once destroyed.)
 */
function relayBody(stream: ServerHttp2Stream, body: PassThrough, usage: ForwardUsage): void {
  const aborted = (): boolean => stream.destroyed || (stream.closed && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR);
  const abort = (): void => {
    if (!body.writableEnded && !body.destroyed) body.destroy(new Error("the gateway reset the request stream before the body ended"));
  };
  stream.on("data", (chunk: Buffer) => {
    usage.bytesFromClient += chunk.length;
    if (!body.write(chunk)) {
      stream.pause();
      body.once("drain", () => stream.resume());
    }
  });
  stream.once("end", () => (aborted() ? abort() : body.end()));
  stream.once("close", abort);
}

interface ParsedBackend {
  origin: string;
  host: string;
  /** The internal URL's path without trailing slashes, put in front of every request path. */
  prefix: string;
}

const parsedBackends = new WeakMap<BackendTarget, ParsedBackend | null>();

/** The internal URL taken apart once per backend entry (entries are replaced, never changed, when the URL map changes). */
function parsedBackend(b: BackendTarget): ParsedBackend | null {
  let p = parsedBackends.get(b);
  if (p === undefined) {
    try {
      const u = new URL(b.url);
      p = { origin: u.origin, host: u.host, prefix: u.pathname.replace(/\/+$/, "") };
    } catch {
      p = null;
    }
    parsedBackends.set(b, p);
  }
  return p;
}

/**
 * Streams one backend response onto its tunnel stream, with backpressure both ways: a full tunnel
 * stream pauses the backend socket. A tunnel stream that closes before the whole response went
 * out was cancelled by the gateway (client gone) or broke: the backend request is aborted too.
 */
class BackendResponseHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private cancelled = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly usage: ForwardUsage,
    private readonly on: { done: (result: ForwardResult) => void; failed: (err: Error & { code?: string }) => void },
  ) {
    // Not stream.writableFinished: when a stream is reset or its session dies, Node ends the
    // writable side itself ("aborted", "finish", then "close"), so a cancelled or cut stream reads
    // as finished. Only the backend's end (settled) makes the close a normal one. Trusting it left
    // the backend request running until its timeouts (on Node 24 a cut tunnel always did).
    stream.once("close", () => {
      if (this.settled) return;
      this.cancelled = true;
      this.controller?.abort(new Error("the gateway cancelled the request"));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancelled) controller.abort(new Error("the gateway cancelled the request"));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational answers stay on this hop
    if (this.stream.destroyed) return controller.abort(new Error("the tunnel stream is gone"));
    this.stream.respond({ ":status": statusCode, ...endToEndHeaders(headers) });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.stream.destroyed) return;
    this.usage.bytesToClient += chunk.length;
    if (!this.stream.write(chunk)) {
      controller.pause();
      this.stream.once("drain", () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.settled = true;
    if (!this.stream.destroyed) this.stream.end();
    this.on.done("ok");
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error & { code?: string }): void {
    if (this.settled) return;
    this.settled = true;
    if (this.cancelled) return this.on.done("cancelled");
    this.on.failed(err);
  }
}

/** Headers for the backend: end-to-end ones, identity included, minus tunnel-internal ones. */
function backendHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in h) {
    const value = h[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || HOP_BY_HOP.has(name)) continue;
    if (name === Header.role || name === Header.requestId) continue;
    out[name] = value;
  }
  out["x-opencmg-request-id"] = String(h[Header.requestId] ?? "");
  return out;
}
