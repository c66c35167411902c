/**
 * One outbound tunnel of the connection point to one gateway instance, kept up for as long as the
 * connection point runs: dial (through the server's proxy when there is one), TLS with the tunnel
 * certificate, then reverse HTTP/2 (`http2.performServerHandshake`: the side that dialled serves).
 * When it drops, it dials again after a backoff with jitter.
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import { isIP, type Socket } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { NetCode, NetError } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import {
  CONTROL_PATH,
  Header,
  readControlLines,
  PROTOCOL_VERSION,
  TUNNEL_ALPN,
  encodeMessage,
  parseGatewayMessage,
  type CmgSettings,
  type ConnectorMessage,
} from "../wire/tunnel/protocol.ts";
import { keepAlive } from "../wire/tunnel/keepalive.ts";
import { CONNECTION_POINT_H2 } from "../wire/tunnel/h2.ts";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.ts";


/** A gateway instance to keep tunnels to. */
export interface GatewayEndpoint {
  host: string;
  port: number;
  /** Name to check on the instance's tunnel certificate (default: host). */
  servername?: string;
}

export interface TunnelContext {
  connectionPoint: string;
  dial: (host: string, port: number) => Promise<Socket>;
  tls: { certPem: string; keyPem: string; ca: string[] };
  settings: () => CmgSettings;
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => void;
  /** SMS_Cloud_ProxyConnector.log */
  log: ComponentLog;
  /** CMGService.log */
  serviceLog: ComponentLog;
  backoff: BackoffOptions;
  dialTimeoutMs: number;
  pingMs: number;
  /** Called on every state change (health, metrics). */
  changed: () => void;
  /** Bytes on the wire of this tunnel, reported as they move (traffic). */
  onBytes: (sent: number, received: number) => void;
  onHandshakeFailure: () => void;
}

export type TunnelSlotState = "connecting" | "connected" | "waiting" | "stopped";

export class TunnelSlot {
  state: TunnelSlotState = "connecting";
  /** Instance name from the gateway's hello. */
  instance: string | null = null;
  /** Settings revision the instance confirmed it has in force. */
  revisionInForce: number | null = null;
  lastError: { code: number | string; message: string; at: Date } | null = null;
  connectedSince: Date | null = null;
  private session: ServerHttp2Session | null = null;
  private socket: TLSSocket | null = null;
  private control: ServerHttp2Stream | null = null;
  private readonly stopper = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    readonly endpoint: GatewayEndpoint,
    readonly slot: number,
    private readonly ctx: TunnelContext,
  ) {}

  get label(): string {
    return `tunnel ${this.slot + 1} to ${this.endpoint.host}:${this.endpoint.port}`;
  }

  /** Reports the wire bytes moved since the last call (the connection point calls it before a traffic report). */
  flushBytes: () => void = () => {};

  start(): void {
    this.loop ??= this.run();
  }

  /** Sends the settings to the instance (on change). */
  pushSettings(s: CmgSettings): void {
    this.send({ type: "settings", settings: s });
  }

  /**
   * Drains: GOAWAY (the gateway stops sending new requests here), control stream closed, the
   * requests in flight get `drainMs` to finish, then the connection is cut.
   */
  async stop(drainMs: number): Promise<void> {
    this.stopper.abort();
    const s = this.session;
    const socket = this.socket;
    if (s && !s.destroyed) {
      const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
      const cut = setTimeout(() => {
        s.destroy();
        socket?.destroy();
      }, drainMs);
      s.close();
      this.control?.close(http2.constants.NGHTTP2_NO_ERROR);
      await bounded(closed, drainMs + 1000);
      clearTimeout(cut);
    }
    // The loop ends at its next step (dial, handshake and sleep all watch the stopper); bounded
    // anyway, so a stop never hangs on a socket that does not report its end.
    await bounded(this.loop ?? Promise.resolve(), this.ctx.dialTimeoutMs + 1000);
    this.setState("stopped");
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopper.signal.aborted) {
      this.setState("connecting");
      let wasUp = false;
      try {
        wasUp = await this.connectOnce();
      } catch (err) {
        this.fail(err);
      }
      if (this.stopper.signal.aborted) break;
      if (wasUp) attempt = 0;
      const delay = backoffDelay(attempt++, this.ctx.backoff);
      this.setState("waiting");
      this.ctx.log.info(`${this.label}: dialling again in ${delay} ms`);
      await sleep(delay, this.stopper.signal);
    }
  }

  /** One connection, from dial to close. Resolves true if the tunnel got as far as the control stream. */
  private async connectOnce(): Promise<boolean> {
    const { host, port } = this.endpoint;
    const raw = await withTimeout(this.ctx.dial(host, port), this.ctx.dialTimeoutMs, () =>
      new NetError(NetCode.TIMEOUT, "gateway", host, `dialling ${host}:${port} took longer than ${this.ctx.dialTimeoutMs} ms`),
    );
    if (this.stopper.signal.aborted) {
      raw.destroy();
      return false;
    }
    // Small frames (HEADERS, then DATA) must leave at once: Nagle would hold the second one back
    // until the first is acknowledged. Set on the TCP socket itself, before TLS wraps it.
    raw.setNoDelay(true);
    const socket = await this.handshake(raw);
    if (this.stopper.signal.aborted) {
      socket.destroy();
      return false;
    }
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
    return this.serve(socket);
  }

  private handshake(raw: Socket): Promise<TLSSocket> {
    const { host, port } = this.endpoint;
    const name = this.endpoint.servername ?? host;
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        socket: raw,
        host: name,
        servername: isIP(name) ? undefined : name,
        ca: this.ctx.tls.ca,
        cert: this.ctx.tls.certPem,
        key: this.ctx.tls.keyPem,
        ALPNProtocols: [TUNNEL_ALPN],
        minVersion: "TLSv1.2",
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new NetError(NetCode.TIMEOUT, "gateway", host, `TLS with ${host}:${port} did not complete within ${this.ctx.dialTimeoutMs} ms`));
      }, this.ctx.dialTimeoutMs);
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        if (socket.alpnProtocol !== TUNNEL_ALPN) {
          socket.destroy();
          this.ctx.onHandshakeFailure();
          reject(new NetError(NetCode.SECURITY, "gateway", host, `${host}:${port} is not an OpenCMG tunnel listener (ALPN ${String(socket.alpnProtocol)})`));
          return;
        }
        resolve(socket);
      });
      socket.once("error", (err: Error & { code?: string }) => {
        clearTimeout(timer);
        socket.destroy();
        // A connection cut during the handshake (an instance that is down behind a proxy or load
        // balancer looks like this) is not a certificate problem.
        if (err.code === "ECONNRESET" || err.code === "EPIPE") {
          reject(new NetError(NetCode.CONNECTION_ENDED, "gateway", host, `${host}:${port} ended the connection during the TLS handshake: ${err.message}`, { cause: err }));
          return;
        }
        this.ctx.onHandshakeFailure();
        reject(new NetError(NetCode.SECURITY, "gateway", host, `TLS with ${host}:${port} failed: ${err.message}`, { cause: err }));
      });
    });
  }

  /** Reverse HTTP/2 on the TLS socket until it closes. */
  private serve(socket: TLSSocket): Promise<boolean> {
    return new Promise((resolve) => {
      const session = http2.performServerHandshake(socket, {
        maxSessionMemory: CONNECTION_POINT_H2.maxSessionMemoryMb,
        settings: {
          initialWindowSize: CONNECTION_POINT_H2.streamWindow,
          maxConcurrentStreams: CONNECTION_POINT_H2.maxConcurrentStreams,
          maxFrameSize: CONNECTION_POINT_H2.maxFrameSize,
        },
      });
      this.session = session;
      this.socket = socket;
      const openedAt = Date.now();
      let up = false;
      let sent = 0;
      let received = 0;
      const countBytes = (): void => {
        const s = socket.bytesWritten - sent;
        const r = socket.bytesRead - received;
        sent += s;
        received += r;
        if (s || r) this.ctx.onBytes(s, r);
      };
      this.flushBytes = countBytes;
      try {
        session.setLocalWindowSize(CONNECTION_POINT_H2.connectionWindow);
      } catch {
        session.once("connect", () => session.setLocalWindowSize(CONNECTION_POINT_H2.connectionWindow));
      }

      // The gateway must open its control stream promptly; a listener that does not is not ours.
      const controlTimer = setTimeout(() => {
        this.ctx.log.error(`${this.label}: the gateway opened no control stream within ${this.ctx.dialTimeoutMs} ms; closing`);
        session.destroy();
      }, this.ctx.dialTimeoutMs);

      const pinger = keepAlive(session, this.ctx.pingMs, () => this.ctx.log.warn(`${this.label}: the gateway missed a keep-alive answer; closing the tunnel`), countBytes);

      session.on("stream", (stream, headers, flags) => {
        if (headers[":path"] === CONTROL_PATH) {
          clearTimeout(controlTimer);
          if (this.control) {
            stream.respond({ ":status": 409 });
            stream.end();
            return;
          }
          up = this.openControl(stream, headers);
          return;
        }
        if (this.state !== "connected") {
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        this.ctx.onStream(stream, headers, flags);
      });
      session.on("error", (err) => this.fail(err));
      session.on("goaway", (code) => {
        if (code !== http2.constants.NGHTTP2_NO_ERROR) this.ctx.log.warn(`${this.label}: the gateway sent GOAWAY with code ${code}`);
      });
      session.once("close", () => {
        clearTimeout(controlTimer);
        if (!up && !this.stopper.signal.aborted && (!this.lastError || this.lastError.at.getTime() < openedAt)) {
          // With TLS 1.3 the client finishes its handshake before the server has checked the
          // client certificate; an instance that refuses it just closes the connection.
          this.fail(
            new NetError(
              NetCode.SECURITY,
              "gateway",
              this.endpoint.host,
              `${this.endpoint.host}:${this.endpoint.port} closed the tunnel before opening its control stream: it most likely refused this ` +
                `connection point's tunnel certificate (instances accept only certificates issued by the site CA)`,
            ),
          );
        }
        clearInterval(pinger);
        countBytes();
        this.flushBytes = () => {};
        this.session = null;
        this.socket = null;
        this.control = null;
        this.instance = null;
        this.revisionInForce = null;
        if (this.connectedSince) {
          const up = Math.round((Date.now() - this.connectedSince.getTime()) / 1000);
          this.ctx.log.info(`${this.label} closed after ${up} s`);
        }
        this.connectedSince = null;
        resolve(up);
      });
    });
  }

  /** Answers the gateway's control stream: hello, settings; reads the gateway's hello and acks. */
  private openControl(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    const version = headers[Header.protocol];
    if (version !== String(PROTOCOL_VERSION)) {
      this.ctx.log.error(`${this.label}: the gateway speaks tunnel protocol ${String(version)}; this connection point speaks ${PROTOCOL_VERSION}`);
      stream.respond({ ":status": 400, [Header.protocol]: String(PROTOCOL_VERSION) }, { endStream: true });
      this.session?.close();
      return false;
    }
    this.control = stream;
    stream.respond({ ":status": 200, "content-type": "application/x-ndjson", [Header.protocol]: String(PROTOCOL_VERSION) });
    stream.on("error", (err) => this.ctx.log.warn(`${this.label}: control stream error: ${err.message}`));
    stream.once("close", () => {
      if (this.control === stream) this.control = null;
      // A tunnel without its control stream is not managed any more: let it go and dial again.
      this.session?.close();
    });
    this.send({ type: "hello", protocol: PROTOCOL_VERSION, connectionPoint: this.ctx.connectionPoint });
    this.send({ type: "settings", settings: this.ctx.settings() });

    readControlLines(
      stream,
      (line) => {
        let m;
        try {
          m = parseGatewayMessage(line);
        } catch (err) {
          this.ctx.log.warn(`${this.label}: unreadable control message ignored: ${(err as Error).message}`);
          return;
        }
        if (!m) return;
        if (m.type === "hello") {
          this.instance = m.instance;
          this.revisionInForce = m.revision;
        } else if (m.type === "settings-applied") {
          this.revisionInForce = m.revision;
          this.ctx.serviceLog.info(`Gateway instance ${this.instance ?? "?"} applied settings revision ${m.revision} (${this.label})`);
        } else if (m.type === "settings-ignored") {
          this.revisionInForce = m.current;
        } else if (m.type === "settings-in-force") {
          this.revisionInForce = m.revision;
        } else if (m.type === "settings-rejected") {
          this.ctx.serviceLog.error(`Gateway instance ${this.instance ?? "?"} rejected settings revision ${m.revision}: ${m.error}`);
        }
        this.ctx.changed();
      },
      (err) => {
        this.ctx.log.error(`${this.label}: control stream: ${err.message}`);
        this.session?.destroy();
      },
    );
    this.connectedSince = new Date();
    this.lastError = null;
    this.setState("connected");
    this.ctx.log.info(`${this.label} connected (reverse HTTP/2, ${TUNNEL_ALPN})`);
    return true;
  }

  private send(m: ConnectorMessage): void {
    const c = this.control;
    if (c && !c.destroyed && c.writable) c.write(encodeMessage(m));
  }

  private fail(err: unknown): void {
    const { host, port } = this.endpoint;
    // Dial failures through Egress are NetErrors already; a plain socket's are classified here.
    const ne = err instanceof NetError ? err : toNetError(err, { route: { mode: "direct" }, targetHost: `${host}:${port}` });
    const repeated = this.lastError?.code === ne.code && this.lastError.message === ne.message;
    this.lastError = { code: ne.code, message: ne.message, at: new Date() };
    // The same failure on every retry is logged once, until something changes.
    if (!this.stopper.signal.aborted && !repeated) this.ctx.log.warn(`${this.label}: ${ne.message} (${ne.code}, hop ${ne.hop})`);
    this.ctx.changed();
  }

  private setState(s: TunnelSlotState): void {
    if (this.state === s) return;
    this.state = s;
    this.ctx.changed();
  }
}

/** Waits for `p`, at most `ms`. */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void p.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function withTimeout<T extends { destroy(): void }>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(onTimeout());
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        if (late) v.destroy();
        else resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
