/**
 * What happens in the data path, published once on named diagnostics channels
 * (`node:diagnostics_channel`, as undici does in lib/core/diagnostics.js). Log lines, Prometheus
 * metrics, the site's component status and live console views subscribe here instead of being
 * written from inside the code that makes the event happen.
 *
 * Every message carries the `source` that published it: one gateway instance, one connection point
 * or one egress, compared by identity. Several of each may share a process (the tests run whole
 * CMGs in one), so an observer subscribes for its own source and unsubscribes when it stops.
 *
 * Publishers check `topic.active` before building a message, so nobody pays for an event that
 * nobody listens to.
 *
 * @example
 * const off = topics.gatewayRequest.subscribe((m) => log.info(`${m.method} ${m.path} ${m.status}`), instanceSource);
 * // ... on stop:
 * off();
 */
import diagnostics_channel, { type Channel } from "node:diagnostics_channel";
import type { Hop } from "../errors.ts";
import type { ClientIdentity } from "../wire/tunnel/headers.ts";

/** Who publishes: one gateway instance, one connection point, one egress. Compared by identity, never by name. */
export interface Source {
  readonly kind: "gateway" | "connection-point" | "egress" | "site";
  /** For people: the instance name, the connection point's name, the egress's log file. */
  readonly name: string;
}

/**
 * A new source: two calls with the same name give two sources (two instances called "cmg1-0" in
 * one process stay apart).
 *
 * @example
 * const me = newSource("gateway", cfg.instanceName);
 */
export function newSource(kind: Source["kind"], name: string): Source {
  return Object.freeze({ kind, name });
}

// ---- egress ----------------------------------------------------------------------------------

/** A raw connection asked of an egress (`egress.connect`: a CONNECT through the proxy, or direct). */
export interface EgressConnectMessage {
  source: Source;
  /** `host:port` of the target. */
  target: string;
  via: "direct" | "proxy";
  /** `host:port` of the proxy when `via` is "proxy". */
  proxy?: string;
}

/** An outbound connection or request failed, with the platform's code and the hop that failed. */
export interface EgressConnectErrorMessage {
  source: Source;
  target: string;
  via: "direct" | "proxy";
  proxy?: string;
  /** "connect": egress.connect (a tunnel, a raw socket); "request": a request through the egress's dispatcher. */
  stage: "connect" | "request";
  code: number | string;
  hop: Hop;
  message: string;
}

// ---- gateway ---------------------------------------------------------------------------------

/** How a client request ended: the `result` label of opencmg_gateway_requests_total. */
export type GatewayRequestResult =
  | "ok"
  | "refused"
  | "not_found"
  | "role_not_allowed"
  | "not_configured"
  | "no_tunnel"
  | "too_large"
  | "upstream_error"
  | "upstream_timeout"
  | "client_aborted";

/** The request line of a client request, as logs show it (never the query: it may carry a token). */
interface RequestLine {
  requestId: string;
  method: string;
  /** Path without the query. */
  path: string;
  clientAddress: string | undefined;
}

/** A request the gateway relayed toward a role (whatever the answer), once it is over. */
export interface GatewayRequestMessage extends RequestLine {
  source: Source;
  roleId: string;
  roleKind: string;
  /** The status the client got; 0 when it went away before any answer. */
  status: number;
  result: GatewayRequestResult;
  /** The gateway's reason code when the gateway answered itself (no tunnel, timeout, ...). */
  reason?: string;
  /** Body bytes from the client / to the client. */
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Tunnels tried after the first one failed. */
  failovers: number;
  client: ClientIdentity;
  /** The connection point of the last tunnel tried, if any. */
  connectionPoint?: string;
  /** The query string ("?a=b"), only when the instance traces queries (limits.traceQuery). */
  query?: string;
}

/** A request the gateway answered itself before relaying it (authentication, routing, size). */
export interface GatewayRefusalMessage extends RequestLine {
  source: Source;
  status: number;
  /** The reason code of the answer (`x-opencmg-reason`). */
  reason: string;
  result: GatewayRequestResult;
  roleId?: string;
}

/** Which abuse rule a client broke: too many streams cancelled before an answer, or opened too fast. */
export type GatewayAbuseRule = "cancelled_streams" | "stream_rate";

/** A client connection (scope "connection") or identity (scope "client", all its connections) cut off with GOAWAY ENHANCE_YOUR_CALM. */
export interface GatewayAbuseMessage {
  source: Source;
  scope: "connection" | "client";
  rule: GatewayAbuseRule;
  /** Events counted within the window, and the threshold they passed. */
  count: number;
  limit: number;
  windowMs: number;
  clientAddress: string | undefined;
  /** The client certificate's thumbprint and subject, when it sent one. */
  thumbprint?: string | undefined;
  subject?: string | undefined;
  /** Connections closed. */
  connections: number;
}

/**
 * A client over its fair share of the instance (gateway/fairness.ts), by identity ("client") or
 * source address: a request answered 429 (`busy`), or a request body's reading paused (`upload_paused`).
 */
export interface GatewayFairShareMessage {
  source: Source;
  kind: "busy" | "upload_paused";
  scope: "client" | "address";
  clientAddress: string | undefined;
  /** The client certificate's thumbprint (token: its key id, if any). */
  thumbprint: string;
  /** upload_paused: how long the body is not read, ms. */
  waitMs?: number;
}

/** Settings that a connection point sent and the instance now enforces. */
export interface SettingsAppliedMessage {
  source: Source;
  revision: number;
  /** The connection point that sent them. */
  from: string;
  trustedRoots: number;
  intermediates: number;
  crlCheck: boolean;
  roles: number;
}

// ---- tunnels (both ends) ---------------------------------------------------------------------

/** A tunnel at the gateway: TLS accepted (handshake), hello and settings (ready), GOAWAY (draining), gone. */
export type GatewayTunnelState = "handshake" | "ready" | "draining" | "closed";
/** A tunnel at the connection point: dialling (connecting), serving (connected), backoff (waiting), stopped. */
export type ConnectionPointTunnelState = "connecting" | "connected" | "waiting" | "stopped";

export type TunnelStateMessage =
  | {
      source: Source;
      side: "gateway";
      /** "tunnel #3 (cp1 at 127.0.0.1:5555)" */
      tunnel: string;
      id: number;
      connectionPoint: string;
      state: GatewayTunnelState;
      previous: GatewayTunnelState | null;
      /** Requests relayed on it so far. */
      served: number;
    }
  | {
      source: Source;
      side: "connection-point";
      /** "tunnel 1 to host:port" */
      tunnel: string;
      /** `host:port` of the instance. */
      gateway: string;
      slot: number;
      /** Instance name from the gateway's hello, once known. */
      instance: string | null;
      state: ConnectionPointTunnelState;
      /** Null when the tunnel starts. */
      previous: ConnectionPointTunnelState | null;
      /** Why it left "connected" or could not get there (the last error), when known. */
      reason?: string;
    };

// ---- connection point health -----------------------------------------------------------------

/** Component status of SMS_CLOUD_PROXYCONNECTOR, as the site shows it. */
export type ComponentStatus = "ok" | "warning" | "critical";

export interface InstanceHealth {
  host: string;
  port: number;
  /** Instance name from the gateway's hello (null until a tunnel is up). */
  instance: string | null;
  connected: number;
  wanted: number;
  /** Settings revision the instance confirmed (null: none confirmed yet). */
  revisionInForce: number | null;
  lastError: { code: number | string; message: string; at: Date } | null;
}

export interface HealthReport {
  at: Date;
  connectionPoint: string;
  /**
   * ok: every tunnel up and this connection point's settings revision in force everywhere;
   * warning: every instance reachable, but not all tunnels up or another revision in force somewhere;
   * critical: an instance has no tunnel.
   */
  status: ComponentStatus;
  message: string;
  settingsRevision: number;
  instances: InstanceHealth[];
}

/** A connection point's health: on its report interval, when its status changes, and when it stops. */
export interface HealthMessage {
  source: Source;
  trigger: "interval" | "change" | "stop";
  report: HealthReport;
  /** The status of the previous message (null for the first). */
  previous: ComponentStatus | null;
}

// ---- site status ---------------------------------------------------------------------------

/** The site recorded a status message or a component changed state (live console views follow it). */
export interface SiteStatusMessage {
  source: Source;
  what: "message" | "component";
  server: string;
  component: string;
}

// ---- the channels ----------------------------------------------------------------------------

/** One named channel with a typed message. */
export class Topic<T extends { source: Source }> {
  readonly #channel: Channel;
  constructor(readonly name: string) {
    this.#channel = diagnostics_channel.channel(name);
  }

  /** True when someone subscribed: check before building a message. */
  get active(): boolean {
    return this.#channel.hasSubscribers;
  }

  publish(message: T): void {
    this.#channel.publish(message);
  }

  /**
   * Calls `fn` for every message of `from` (every message when `from` is omitted). Returns the
   * unsubscribe function. A subscriber that throws is reported as a process warning; it never
   * breaks the publisher or the other subscribers.
   */
  subscribe(fn: (message: T) => void, from?: Source): () => void {
    const name = this.name;
    const handler = (m: unknown): void => {
      const message = m as T;
      if (from && message.source !== from) return;
      try {
        fn(message);
      } catch (err) {
        process.emitWarning(`subscriber of ${name} failed: ${(err as Error).stack ?? String(err)}`, "OpenCmgObserverWarning");
      }
    };
    diagnostics_channel.subscribe(name, handler);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      diagnostics_channel.unsubscribe(name, handler);
    };
  }
}

/** Every channel, by the name the code uses. The channel names are stable: outside observers may subscribe to them. */
export const topics = {
  /** `opencmg:egress:connect` */
  egressConnect: new Topic<EgressConnectMessage>("opencmg:egress:connect"),
  /** `opencmg:egress:connectError` */
  egressConnectError: new Topic<EgressConnectErrorMessage>("opencmg:egress:connectError"),
  /** `opencmg:gateway:request` */
  gatewayRequest: new Topic<GatewayRequestMessage>("opencmg:gateway:request"),
  /** `opencmg:gateway:refusal` */
  gatewayRefusal: new Topic<GatewayRefusalMessage>("opencmg:gateway:refusal"),
  /** `opencmg:gateway:abuse` */
  gatewayAbuse: new Topic<GatewayAbuseMessage>("opencmg:gateway:abuse"),
  /** A client over its fair share: a request refused with 429, or an upload paused (gateway/fairness.ts). */
  gatewayFairShare: new Topic<GatewayFairShareMessage>("opencmg:gateway:fairShare"),
  /** `opencmg:gateway:settingsApplied` */
  settingsApplied: new Topic<SettingsAppliedMessage>("opencmg:gateway:settingsApplied"),
  /** `opencmg:tunnel:state` (both ends; `side` tells which) */
  tunnelState: new Topic<TunnelStateMessage>("opencmg:tunnel:state"),
  /** `opencmg:connection-point:health` */
  connectionPointHealth: new Topic<HealthMessage>("opencmg:connection-point:health"),
  /** `opencmg:site:status` */
  siteStatus: new Topic<SiteStatusMessage>("opencmg:site:status"),
} as const;

/**
 * Collects unsubscribe functions so a component can drop all of its subscriptions at once.
 *
 * @example
 * const subs = new Subscriptions();
 * subs.add(topics.tunnelState.subscribe(onState, me));
 * // ... on stop:
 * subs.close();
 */
export class Subscriptions {
  readonly #offs: (() => void)[] = [];
  add(...offs: (() => void)[]): this {
    this.#offs.push(...offs);
    return this;
  }
  close(): void {
    for (const off of this.#offs.splice(0)) off();
  }
  /** `close`, as a function to hand on. */
  closer(): () => void {
    return () => this.close();
  }
}
