/**
 * One outbound tunnel of the connection point to one gateway instance, kept up for as long as the
 * connection point runs: dial (dial.ts: through the server's proxy when there is one, TLS with the
 * tunnel certificate), then reverse HTTP/2 (serve.ts: the side that dialled serves). When it
 * drops, it dials again after a backoff with jitter.
 *
 *   connecting ──▶ connected ──▶ waiting (backoff) ──▶ connecting ...      stop() ──▶ stopped
 *
 * Every state change is published on `opencmg:tunnel:state`; metrics and log lines subscribe there.
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { NetError } from "../errors.ts";
import { toNetError } from "../egress/errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { topics, type ConnectionPointTunnelState, type Source } from "../observe/channels.ts";
import { encodeMessage, type ConnectorMessage } from "../wire/tunnel/protocol.ts";
import type { SignedSettings } from "../wire/tunnel/signed-settings.ts";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.ts";
import { dialTunnel, type GatewayEndpoint } from "./dial.ts";
import { serveTunnel } from "./serve.ts";

export type { GatewayEndpoint } from "./dial.ts";

export interface TunnelContext {
  /** The connection point: tunnel states are published with it. */
  source: Source;
  connectionPoint: string;
  dial: (host: string, port: number) => Promise<Socket>;
  tls: { certPem: string; keyPem: string; ca: string[] };
  /** The site's signed settings document, carried as the site issued it. */
  settings: () => SignedSettings;
  /** A client request on a tunnel to instance `gateway` ("host:port"). */
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, gateway: string) => void;
  /** SMS_Cloud_ProxyConnector.log */
  log: ComponentLog;
  /** CMGService.log */
  serviceLog: ComponentLog;
  backoff: BackoffOptions;
  dialTimeoutMs: number;
  pingMs: number;
  /** Called on every change of state, error or revision in force (health, waiters). */
  changed: () => void;
  /** Bytes on the wire of a tunnel to instance `gateway` ("host:port"), reported as they move (traffic). */
  onBytes: (gateway: string, sent: number, received: number) => void;
  onHandshakeFailure: () => void;
  /** The instance runs several workers: their tunnel ports by worker index (the `workers` message). */
  onWorkers?: (slot: TunnelSlot, ports: number[]) => void;
}

export type TunnelSlotState = ConnectionPointTunnelState;

export class TunnelSlot {
  state: TunnelSlotState = "connecting";
  /** Instance name from the gateway's hello. */
  instance: string | null = null;
  /** Settings revision the instance confirmed it has in force. */
  revisionInForce: number | null = null;
  lastError: { code: number | string; message: string; at: Date } | null = null;
  connectedSince: Date | null = null;
  /** The live connection, set and cleared by serve.ts. */
  session: ServerHttp2Session | null = null;
  socket: TLSSocket | null = null;
  control: ServerHttp2Stream | null = null;
  private readonly stopper = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    readonly endpoint: GatewayEndpoint,
    readonly slot: number,
    readonly ctx: TunnelContext,
  ) {}

  get label(): string {
    return `tunnel ${this.slot + 1} to ${this.endpoint.host}:${this.endpoint.port}`;
  }

  /** True once stop() was called. */
  get stopping(): boolean {
    return this.stopper.signal.aborted;
  }

  /** Reports the wire bytes moved since the last call (the connection point calls it before a traffic report). */
  flushBytes: () => void = () => {};

  start(): void {
    if (this.loop) return;
    this.publish(null);
    this.loop = this.run();
  }

  /** Sends the settings to the instance (on change). */
  pushSettings(doc: SignedSettings): void {
    this.send({ type: "settings", document: doc });
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

  /** Writes one control message to the instance, when the control stream is open. */
  send(m: ConnectorMessage): void {
    const c = this.control;
    if (c && !c.destroyed && c.writable) c.write(encodeMessage(m));
  }

  /** Records a failure (logged once while it repeats). */
  fail(err: unknown): void {
    const { host, port } = this.endpoint;
    // Dial failures through Egress are NetErrors already; a plain socket's are classified here.
    const ne = err instanceof NetError ? err : toNetError(err, { route: { mode: "direct" }, targetHost: `${host}:${port}` });
    const repeated = this.lastError?.code === ne.code && this.lastError.message === ne.message;
    this.lastError = { code: ne.code, message: ne.message, at: new Date() };
    // The same failure on every retry is logged once, until something changes.
    if (!this.stopping && !repeated) this.ctx.log.warn(`${this.label}: ${ne.message} (${ne.code}, hop ${ne.hop})`);
    this.ctx.changed();
  }

  setState(s: TunnelSlotState): void {
    if (this.state === s) return;
    const previous = this.state;
    this.state = s;
    this.publish(previous);
    this.ctx.changed();
  }

  private publish(previous: TunnelSlotState | null): void {
    if (!topics.tunnelState.active) return;
    const s = this.state;
    topics.tunnelState.publish({
      source: this.ctx.source,
      side: "connection-point",
      tunnel: this.label,
      gateway: `${this.endpoint.host}:${this.endpoint.port}`,
      slot: this.slot,
      instance: this.instance,
      state: s,
      previous,
      ...(this.lastError && s !== "connected" ? { reason: `${this.lastError.code}: ${this.lastError.message}` } : {}),
    });
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      this.setState("connecting");
      let wasUp = false;
      try {
        const socket = await dialTunnel(this.endpoint, { dial: this.ctx.dial, tls: this.ctx.tls, timeoutMs: this.ctx.dialTimeoutMs, onHandshakeFailure: this.ctx.onHandshakeFailure }, this.stopper.signal);
        if (socket) wasUp = await serveTunnel(this, socket);
      } catch (err) {
        this.fail(err);
      }
      if (this.stopping) break;
      if (wasUp) attempt = 0;
      const delay = backoffDelay(attempt++, this.ctx.backoff);
      this.setState("waiting");
      this.ctx.log.info(`${this.label}: dialling again in ${delay} ms`);
      await sleep(delay, this.stopper.signal);
    }
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
