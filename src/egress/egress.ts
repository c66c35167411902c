/**
 * Every outbound connection of a role goes through an Egress built from its server's route:
 * direct (an undici Agent) or through the server's proxy (an undici ProxyAgent: HTTP CONNECT for
 * `https:` targets, absolute-form requests for `http:` targets), with Basic proxy authentication
 * when the route carries the proxy account, none otherwise. Environment variables (HTTPS_PROXY...)
 * are never consulted: the route is the whole truth.
 *
 * Failures come out as NetError (see errors.ts). Our own connectors dial the first hop, so each
 * error knows whether the proxy or the target failed; an interceptor maps undici's errors and
 * Squid's error pages, logs one line per attempt and one per failure, and passes the rest through.
 * Connections are kept alive and reused (undici pools; one pool per target origin).
 *
 * Raw connections and failures are also published on the observe channels
 * (`opencmg:egress:connect`, `opencmg:egress:connectError`) for whoever watches this egress.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { LookupFunction, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { rootCertificates } from "node:tls";
import { Agent, Pool, ProxyAgent, buildConnector, request as undiciRequest, type Dispatcher } from "undici";
import { NetError, ValidationError } from "../errors.ts";
import { nullLog, type ComponentLog } from "../logs/cmtrace.ts";
import { newSource, topics, type Source } from "../observe/channels.ts";
import { ProxyAnswerError, classifyNetError, tagHop, toNetError, type NetErrorContext } from "./errors.ts";
import { describeRoute, hostForUrl, proxyAddress, type EgressRoute } from "./route.ts";

export interface EgressOptions {
  /** Where attempts and failures are logged (one line each; never the password). */
  log?: ComponentLog;
  /** Limit for TCP connect + TLS handshake of each hop (default 10 s). */
  connectTimeoutMs?: number;
  /** Limit for the response headers after the request was sent (default 60 s; per request: `headersTimeout`). */
  headersTimeoutMs?: number;
  /** Limit for silence between two body chunks (default 60 s; per request: `bodyTimeout`). */
  bodyTimeoutMs?: number;
  /** Extra trusted roots (PEM) for the targets' TLS, added to the system's. */
  ca?: string[];
  /**
   * Name resolution for what this server resolves itself: direct targets and the proxy's name
   * (default the system's). Tests map names to loopback; through a proxy, targets are resolved by
   * the proxy, never here.
   */
  lookup?: LookupFunction;
  /** What connects and failures are published with (default: a new source named after the log file). */
  source?: Source;
}

export type EgressRequestOptions = Omit<NonNullable<Parameters<typeof undiciRequest>[1]>, "dispatcher">;

type ProxyRoute = Extract<EgressRoute, { mode: "proxy" }>;

/**
 * The outbound path of one server (or one role on it).
 *
 * @example
 * const egress = new Egress({ mode: "proxy", host: "proxy.contoso.com", port: 3128, credentials }, { log });
 * const res = await egress.request("https://download.windowsupdate.com/c/msdownload/kb.cab");
 * const socket = await egress.connect("cmg.contoso.com", 443); // a raw CONNECT tunnel
 * await egress.close();
 */
export class Egress {
  readonly route: EgressRoute;
  /** Subscribe to the observe channels for this source to follow this egress. */
  readonly source: Source;
  readonly #log: ComponentLog;
  readonly #connectTimeoutMs: number;
  readonly #dispatcher: Dispatcher;
  readonly #lookup: LookupFunction | undefined;
  /** Pool of connections to the proxy that carry CONNECT requests (shared with the ProxyAgent). */
  #tunnels: ProxyTunnelPool | undefined;

  constructor(route: EgressRoute, opts: EgressOptions = {}) {
    this.route = validateRoute(route);
    this.#log = opts.log ?? nullLog;
    this.source = opts.source ?? newSource("egress", this.#log.file || "egress");
    this.#connectTimeoutMs = positive("connectTimeoutMs", opts.connectTimeoutMs ?? 10_000);
    const headersTimeout = positive("headersTimeoutMs", opts.headersTimeoutMs ?? 60_000);
    const bodyTimeout = positive("bodyTimeoutMs", opts.bodyTimeoutMs ?? 60_000);
    this.#lookup = opts.lookup;
    // Node's `ca` replaces the default roots; keep them and add ours.
    const ca = opts.ca && opts.ca.length > 0 ? [...rootCertificates, ...opts.ca] : undefined;
    const timeout = this.#connectTimeoutMs;
    const lookup = opts.lookup ? { lookup: opts.lookup } : {};

    let base: Dispatcher;
    if (this.route.mode === "direct") {
      base = new Agent({ connect: tagged("target", buildConnector({ timeout, ca, ...lookup })), headersTimeout, bodyTimeout });
    } else {
      const proxy = this.route;
      const proxyOrigin = `http://${proxyAddress(proxy)}`;
      const toProxy = tagged("proxy", buildConnector({ timeout, ...lookup }));
      base = new ProxyAgent({
        uri: proxyOrigin,
        // Passed as a token, not in the URI, so the password never sits in a URL.
        token: proxy.credentials ? basicAuthorization(proxy.credentials) : undefined,
        // false: `http:` targets go to the proxy in absolute form (GET http://host/path), as
        // proxies expect; `https:` targets always tunnel with CONNECT.
        proxyTunnel: false,
        requestTls: { timeout, ca },
        headersTimeout,
        bodyTimeout,
        // The pool that sends CONNECT: our connector, and a check of the answer that keeps
        // Squid's X-Squid-Error (undici's own check keeps only the status).
        clientFactory: (origin: URL) => (this.#tunnels = new ProxyTunnelPool(origin, { connect: toProxy, headersTimeout })),
        // Called for tunnelled origins (keep undici's options, its connect opens the tunnel) and,
        // with the proxy's own URL, for the pool that carries absolute-form requests.
        factory: (origin: string | URL, options: object) =>
          new URL(String(origin)).origin === proxyOrigin
            ? new Pool(origin, { connect: toProxy, headersTimeout, bodyTimeout })
            : new Pool(origin, options as Pool.Options),
      });
    }
    this.#dispatcher = base.compose(this.#intercept);
  }

  /** The dispatcher to give undici's request/fetch/stream; failures come out as NetError. */
  dispatcher(): Dispatcher {
    return this.#dispatcher;
  }

  /**
   * undici's `request` through this egress; failures reject with NetError (body errors too).
   * A status from the target (404, 500...) is an answer, not a failure: the caller checks it.
   */
  request(url: string | URL, opts: EgressRequestOptions = {}): Promise<Dispatcher.ResponseData> {
    return undiciRequest(url, { ...opts, dispatcher: this.#dispatcher }) as Promise<Dispatcher.ResponseData>;
  }

  /**
   * A raw TCP connection to host:port: a CONNECT tunnel through the proxy (with the proxy
   * account), or a direct connection. Resolves once the tunnel is open (proxy answered 200).
   */
  async connect(host: string, port: number, opts: { timeoutMs?: number } = {}): Promise<Socket> {
    const authority = `${hostForUrl(host)}:${port}`;
    const ctx: NetErrorContext = { route: this.route, targetHost: authority };
    const timeoutMs = opts.timeoutMs ?? this.#connectTimeoutMs;
    this.#log.info(`Connecting to ${authority} (${describeRoute(this.route)})`, { host: authority });
    if (topics.egressConnect.active) topics.egressConnect.publish({ source: this.source, target: authority, ...this.#via() });
    try {
      if (this.route.mode === "direct") {
        const connector = tagged("target", buildConnector({ timeout: timeoutMs, ...(this.#lookup ? { lookup: this.#lookup } : {}) }));
        return await new Promise<Socket>((resolve, reject) =>
          connector({ hostname: host, host, protocol: "http:", port: String(port) }, (err, socket) => (err ? reject(err) : resolve(socket as Socket))),
        );
      }
      const route = this.route;
      const abort = new AbortController();
      const timer = setTimeout(
        () => abort.abort(tagHop(Object.assign(new Error(`no tunnel to ${authority} within ${timeoutMs} ms`), { code: "ETIMEDOUT" }), "target")),
        timeoutMs,
      );
      try {
        const { socket } = await this.#tunnels!.connect({
          origin: `http://${proxyAddress(route)}`,
          path: authority,
          headers: { host: authority, ...(route.credentials ? { "proxy-authorization": basicAuthorization(route.credentials) } : {}) },
          signal: abort.signal,
        });
        return socket as Socket;
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      const ne = toNetError(e, ctx);
      this.#log.error(`Connection to ${authority} failed, error ${ne.code} at the ${ne.hop}: ${ne.message}`, { code: ne.code, hop: ne.hop, host: ne.host });
      this.#publishError("connect", authority, ne);
      throw ne;
    }
  }

  /** Closes the pools once running requests finish (sockets from connect() belong to their caller). */
  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  readonly #intercept: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
    const origin = new URL(String(opts.origin));
    const ctx: NetErrorContext = { route: this.route, targetHost: origin.host };
    // Only absolute-form requests get their answer from the proxy itself; through a tunnel the
    // answer is the target's, whatever its headers say.
    const forwarded = this.route.mode === "proxy" && origin.protocol === "http:";
    // Never the query: it may carry a token (signed storage URLs).
    const what = `${opts.method} ${origin.origin}${opts.path.split("?")[0]}`;
    this.#log.info(`${what} (${describeRoute(this.route)})`, { host: origin.host });
    return dispatch(opts, new MappingHandler(handler, ctx, forwarded, (err) => this.#logFailure(what, origin.host, err)));
  };

  /** "direct", or the proxy's address. */
  #via(): { via: "direct" } | { via: "proxy"; proxy: string } {
    return this.route.mode === "direct" ? { via: "direct" } : { via: "proxy", proxy: proxyAddress(this.route) };
  }

  #publishError(stage: "connect" | "request", target: string, ne: NetError): void {
    if (!topics.egressConnectError.active) return;
    topics.egressConnectError.publish({ source: this.source, target, ...this.#via(), stage, code: ne.code, hop: ne.hop, message: ne.message });
  }

  #logFailure(what: string, target: string, err: Error): void {
    if (err instanceof NetError) {
      this.#log.error(`${what} failed, error ${err.code} at the ${err.hop}: ${err.message}`, { code: err.code, hop: err.hop, host: err.host });
      this.#publishError("request", target, err);
    } else {
      // Not a network failure (the caller aborted, a bad argument): noted, not an error.
      this.#log.warn(`${what} stopped: ${err.message}`);
    }
  }
}

/**
 * Wraps a handler (undici's compose gives interceptors the new handler style) to turn failures
 * into NetError before the caller sees them, including errors while the body streams.
 */
class MappingHandler implements Dispatcher.DispatchHandler {
  #done = false;
  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly ctx: NetErrorContext,
    private readonly forwarded: boolean,
    private readonly onFailure: (err: Error) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.#done = true;
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (this.#done) return;
    if (this.forwarded && statusCode >= 400 && headers["x-squid-error"] !== undefined) {
      const v = headers["x-squid-error"];
      const ne = classifyNetError(new ProxyAnswerError(statusCode, Array.isArray(v) ? v[0] : v, "forward"), this.ctx);
      if (ne) {
        // The proxy's error page is not the target's answer: fail the request with it.
        controller.abort(ne);
        return;
      }
    }
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    this.inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    this.#done = true;
    this.inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    // undici's absolute-form proxy wrapper reports a 407 as an error, then lets the response run
    // on: everything after the first error is dropped.
    if (this.#done) return;
    this.#done = true;
    const mapped = classifyNetError(err, this.ctx) ?? err;
    this.onFailure(mapped);
    this.inner.onResponseError?.(controller, mapped);
  }
}

/** A pool to the proxy whose CONNECT fails unless the proxy answers 200, keeping its headers. */
class ProxyTunnelPool extends Pool {
  override connect(options: Dispatcher.ConnectOptions): Promise<Dispatcher.ConnectData>;
  override connect(options: Dispatcher.ConnectOptions, callback: (err: Error | null, data: Dispatcher.ConnectData) => void): void;
  override connect(
    options: Dispatcher.ConnectOptions,
    callback?: (err: Error | null, data: Dispatcher.ConnectData) => void,
  ): Promise<Dispatcher.ConnectData> | void {
    const done = super.connect(options).then((data) => {
      if (data.statusCode !== 200) {
        data.socket.on("error", () => {}).destroy();
        const squid = data.headers["x-squid-error"];
        throw new ProxyAnswerError(data.statusCode, Array.isArray(squid) ? squid[0] : squid, "connect");
      }
      return data;
    });
    if (!callback) return done;
    done.then(
      (data) => callback(null, data),
      (err: Error) => callback(err, undefined as unknown as Dispatcher.ConnectData),
    );
  }
}

function tagged(hop: "proxy" | "target", connector: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connector(options, (...args) => {
      if (args[0]) tagHop(args[0], hop);
      callback(...args);
    });
}

/** `Basic base64(user:password)`. */
export function basicAuthorization(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new ValidationError(name, "positive", `${name}: must be a positive number of milliseconds`);
  return v;
}

function validateRoute(route: EgressRoute): EgressRoute {
  if (route.mode === "direct") return route;
  if (route.mode !== "proxy") throw new ValidationError("route.mode", "direct|proxy", `route.mode: must be "direct" or "proxy"`);
  const p: ProxyRoute = route;
  if (!p.host || /[\s/@?#]/.test(p.host)) throw new ValidationError("proxy.host", "hostname", "proxy.host: must be a host name or address");
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65_535) throw new ValidationError("proxy.port", "1..65535", "proxy.port: must be 1 to 65535");
  if (p.credentials) {
    if (!p.credentials.username || p.credentials.username.includes(":")) {
      // Basic authentication joins user and password with ":", so a user name cannot hold one.
      throw new ValidationError("proxy.credentials.username", "no-colon", "proxy.credentials.username: must be set and must not contain ':'");
    }
  }
  return p;
}
