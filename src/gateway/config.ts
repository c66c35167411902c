/**
 * Start-up configuration of one gateway instance. On purpose it holds only what the instance
 * needs before any connection point has reached it: its certificates, where to listen, which CA
 * issues connection point certificates, and its limits. Trusted roots, revocation checking and the
 * URL map arrive over the tunnel (protocol.ts), so an instance can be rebuilt anywhere at any time.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { ValidationError } from "../errors.ts";
import { DEFAULT_TUNNEL_PORT_BASE, type BackendKind } from "../wire/tunnel/protocol.ts";
import { CONNECTION_POINT_H2, GATEWAY_ADDED_HEADERS } from "../wire/tunnel/h2.ts";
import { trustedKeys } from "../wire/tunnel/signed-settings.ts";
import type { StartupTrust } from "./settings-store.ts";

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface GatewayLimits {
  /** TLS handshake must finish within this (client and tunnel listeners). */
  handshakeTimeoutMs: number;
  /** HTTP/1.1: complete request headers within this after the connection or previous request. */
  headersTimeoutMs: number;
  /** HTTP/1.1: the whole request (headers and body) within this; 0 = no limit. */
  requestTimeoutMs: number;
  /** A client connection with no traffic at all for this long is closed. */
  idleTimeoutMs: number;
  /**
   * Largest request header block (HTTP/1.1 bytes; HTTP/2 header list size). At most what the
   * connection point's HTTP/2 server accepts less what the gateway adds (CONNECTION_POINT_H2,
   * GATEWAY_ADDED_HEADERS), so an oversized request gets 431 here and is never relayed.
   */
  maxHeaderBytes: number;
  /** Most request header fields (HTTP/1.1 and HTTP/2 alike); same bound by the connection point's limit. */
  maxHeaderCount: number;
  /** Largest request body by role kind, unless the URL map entry says otherwise. */
  maxRequestBodyBytes: Record<BackendKind, number>;
  /** Client connections held at once; further connections are closed on accept. */
  maxConnections: number;
  /**
   * Concurrent requests on one HTTP/2 client connection (SETTINGS_MAX_CONCURRENT_STREAMS). With
   * the tunnel's stream window (TUNNEL_H2.streamWindow, 4 MiB) it bounds what one connection can
   * make the instance buffer when it stops reading: 32 x 4 MiB = 128 MiB at worst, and only until
   * streamIdleTimeoutMs. A device agent runs a handful of requests at once.
   */
  maxStreamsPerClient: number;
  /**
   * Abuse detection on HTTP/2 client connections (rapid reset, CVE-2023-44487, and floods): counted
   * per connection and per client identity (certificate thumbprint) across its connections, over
   * a sliding window of `abuseWindowMs`. Past a threshold the connection (for an identity: every
   * connection of it) gets GOAWAY ENHANCE_YOUR_CALM and is closed. 0 turns a rule off.
   */
  abuseWindowMs: number;
  /**
   * Streams the client cancelled (RST_STREAM) before any response, per connection within the
   * window. Each one may have started a request on-premises; a normal client cancels a few when
   * it gives up or shuts down, never hundreds.
   */
  maxCancelledStreamsPerConnection: number;
  /** The same, summed over all connections of one client identity (one device opening many connections). */
  maxCancelledStreamsPerClient: number;
  /**
   * Streams opened per second on one connection (a 1 s sliding window). Concurrency is capped by
   * maxStreamsPerClient; this catches floods of short streams (each costs a tunnel stream and a
   * backend request). Well above what a device agent does.
   */
  maxStreamsPerSecondPerConnection: number;
  /** Streams opened per second by one client identity over all its connections. */
  maxStreamsPerSecondPerClient: number;
  /**
   * Fair shares (fairness.ts). Requests in progress of one client identity (certificate
   * thumbprint or token) over all its connections, HTTP/1.1 and HTTP/2; over it a request gets
   * 429 client_busy and is not relayed. 0 turns it off.
   */
  maxRequestsPerClientIdentity: number;
  /** Requests in progress from one source address over all its connections and identities (429 address_busy). */
  maxRequestsPerAddress: number;
  /** Request body bytes per second one client identity may send, over all its requests, once its burst is spent; 0 = no limit. */
  uploadBytesPerSecondPerClient: number;
  /** Body bytes one client identity may send at full speed before its rate applies. */
  uploadBurstBytesPerClient: number;
  /** Request body bytes per second from one source address (all identities behind it); 0 = no limit. */
  uploadBytesPerSecondPerAddress: number;
  /** Body bytes one source address may send at full speed before its rate applies. */
  uploadBurstBytesPerAddress: number;
  /** Verbose traffic log: the CMGHttpHandler.log line of each request shows the query string too (it may carry identifiers). */
  traceQuery: boolean;
  /** Time for the management point's answer (response headers) to come back through the tunnel. */
  upstreamResponseTimeoutMs: number;
  /** A relayed request or response that moves no byte for this long is aborted. */
  streamIdleTimeoutMs: number;
  /** Tunnels tried for one request (failover) before the client gets 502. */
  maxAttempts: number;
  /** `Retry-After` seconds on 503 when no connection point is connected. */
  retryAfterSeconds: number;
  /** How long a client verdict is reused for the same certificate (per connection and by thumbprint). */
  authCacheMs: number;
  /**
   * Client connections in their TLS handshake (TCP accepted, TLS not finished), counted apart from
   * `maxConnections`, per gateway process; past it, new connections wait for a place (admission.ts).
   */
  maxPendingConnections: number;
  /** The same, from one source address. */
  maxPendingPerAddress: number;
  /**
   * Connections waiting for a handshake place (their address or the listener at its cap), accepted
   * but paused before any TLS work (admission.ts), from one address and in total; past either the
   * oldest waiting is closed. A waiting connection is closed after handshakeTimeoutMs.
   */
  maxWaitingPerAddress: number;
  maxWaitingConnections: number;
  /**
   * A place whose peer has sent nothing is held at least this long (and at least four times the
   * recent handshake time, at most half handshakeTimeoutMs) before a newcomer may take it (both
   * listeners): places change hands at most this often, so an address reconnecting without end
   * costs no TLS work. A place whose peer has sent bytes is never taken: a handshake under way is
   * not cut short, however busy the machine (the handshake timeout ends one that stalls).
   */
  handshakeGraceMs: number;
  /**
   * Event-loop lag (p99 over 250 ms) past which a gateway process runs fewer client handshakes at
   * once, down to minPendingConnections, so the devices already connected keep being answered
   * (handshake-pace.ts); 0 turns pacing off.
   */
  handshakePaceLagMs: number;
  minPendingConnections: number;
  /** Admitted tunnels (site CA certificate checked, admitted by the site) held at once; unfinished handshakes do not count. */
  maxTunnels: number;
  /**
   * Tunnel listener connections whose handshake or certificate check is not done yet; over it, the
   * oldest is closed. Also the most tunnels at once that are still to prove their admission
   * (settings-store.ts); over it, a new one is refused.
   */
  maxPendingTunnels: number;
  /** The same, from one source address. */
  maxPendingTunnelsPerAddress: number;
  /** Tunnel listener connections of an address at its maxPendingTunnelsPerAddress waiting for a place (as maxWaitingPerAddress), per address and in total. */
  maxWaitingTunnelsPerAddress: number;
  maxWaitingTunnels: number;
  /** HTTP/2 PING interval on tunnels; a tunnel that misses two answers is closed. */
  tunnelPingMs: number;
}

/** Limits as given: any subset, body limits per kind included. */
export type GatewayLimitsInput = Partial<Omit<GatewayLimits, "maxRequestBodyBytes">> & { maxRequestBodyBytes?: Partial<Record<BackendKind, number>> };

/**
 * The defaults, with their reasons: every resource a stranger can hold is bounded here.
 *
 *   handshakeTimeoutMs 10 s       a TLS handshake takes milliseconds, a slow mobile link a second or two;
 *                                 a connection that never starts TLS is closed after this on both listeners
 *   headersTimeoutMs 20 s         slow-header (slowloris) connections; checked every headersTimeoutMs/10
 *                                 (at most 2 s), so the connection closes within ~10% of the limit
 *   requestTimeoutMs 300 s        a whole upload; content uploads are chunked by clients
 *   idleTimeoutMs 120 s           clients poll every few minutes; a held idle connection costs memory
 *   maxConnections 18,000         devices at once per instance (the platform's sizing per VM)
 *   maxPendingConnections 256     handshakes in progress per process on the client listener: a reconnect storm's
 *                                 excess waits paused (no TLS work, no TLS memory) instead, and a turn of the event
 *                                 loop holds at most 256 handshakes' CPU (~1.5 ms each); enough places for devices
 *                                 on slow links, whose handshakes hold them for round trips
 *   maxPendingPerAddress 64       many devices share an address behind NAT, but 64 handshakes at the same
 *                                 moment from one address is already a burst; a quarter of the places
 *   handshakePaceLagMs 100        a process whose event loop lags past 100 ms (p99) runs 30% fewer handshakes at once,
 *   minPendingConnections 16      down to 16, and more again (an eighth) under 50 ms: in a storm the devices already
 *                                 back keep getting answers in well under a second while the rest wait their turn
 *   maxTunnels 256                authenticated tunnels: connection points x connections per instance, with room
 *   maxPendingTunnels 64          only a handful of connection points dial an instance; strangers who reach the
 *   maxPendingTunnelsPerAddress 16  tunnel port can hold at most this many places, never a tunnel's
 *   maxWaitingPerAddress 2,048     connections past a handshake cap (their address's or the listener's) wait paused,
 *   maxWaitingConnections 8,192   before any TLS work, for a place (newest first) instead of closing a handshake in
 *   maxWaitingTunnels(PerAddress) progress: a storm's devices wait their turn, and an address reconnecting without
 *     1,024 / 2,048               end costs a socket each until the handshake timeout, not a TLS socket
 *   maxRequestsPerClientIdentity 64  a device agent runs a handful of requests at once; 64 is two connections'
 *                                 worth of streams, and an identity gains nothing by opening more connections
 *   maxRequestsPerAddress 4,096   thousands of devices may sit behind one NAT address, each with a request or two
 *   upload 4 MiB/s, burst 16 MiB  per identity: device uploads (inventory, state and status messages, logs) are
 *                                 kilobytes to a few MiB and go at full speed; a body past the burst goes on at
 *                                 32 Mbit/s, so one device cannot make the instance, the tunnel and the role
 *                                 spend their CPU on its bytes while the others wait
 *   upload 32 MiB/s, burst 64 MiB per source address: a NAT's devices together, eight identities' worth
 */
export const DEFAULT_LIMITS: GatewayLimits = {
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 120_000,
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  maxRequestBodyBytes: { mp: 64 * 1024 * 1024, sup: 1024 * 1024 },
  maxConnections: 18_000,
  maxStreamsPerClient: 32,
  abuseWindowMs: 10_000,
  maxCancelledStreamsPerConnection: 100,
  maxCancelledStreamsPerClient: 200,
  maxStreamsPerSecondPerConnection: 1000,
  maxStreamsPerSecondPerClient: 2000,
  maxRequestsPerClientIdentity: 64,
  maxRequestsPerAddress: 4096,
  uploadBytesPerSecondPerClient: 4 * 1024 * 1024,
  uploadBurstBytesPerClient: 16 * 1024 * 1024,
  uploadBytesPerSecondPerAddress: 32 * 1024 * 1024,
  uploadBurstBytesPerAddress: 64 * 1024 * 1024,
  traceQuery: false,
  upstreamResponseTimeoutMs: 60_000,
  streamIdleTimeoutMs: 120_000,
  maxAttempts: 3,
  retryAfterSeconds: 10,
  authCacheMs: 60_000,
  maxPendingConnections: 256,
  maxPendingPerAddress: 64,
  maxWaitingPerAddress: 2048,
  maxWaitingConnections: 8192,
  handshakeGraceMs: 1000,
  handshakePaceLagMs: 100,
  minPendingConnections: 16,
  maxTunnels: 256,
  maxPendingTunnels: 64,
  maxPendingTunnelsPerAddress: 16,
  maxWaitingTunnelsPerAddress: 1024,
  maxWaitingTunnels: 2048,
  tunnelPingMs: 15_000,
};

export interface GatewayInstanceConfig {
  /** CMG name (its service name), for logs and the tunnel hello. */
  name: string;
  /** 0-based instance index within the CMG. */
  index: number;
  /** Server authentication certificate that devices see (PEM certificate, chain allowed, and key). */
  serverCert: PemPair;
  /** Where devices connect. */
  client: { host: string; port: number };
  tunnel: {
    host: string;
    /** Default 10140 + index. 0 picks a free port (tests). */
    port?: number;
    /** PEM of the site's CA: only connection point certificates it issued may open a tunnel. */
    siteCaPem: string;
    /**
     * Certificate the tunnel listener presents to connection points. Default: `serverCert`.
     * A certificate issued by the site CA lets connection points trust the tunnel with the site CA alone.
     */
    cert?: PemPair;
  };
  /**
   * What the site trusted when it wrote the start-up bundle: its settings-signing keys, the
   * connection points it admitted, its settings revision. Settings documents replace it as they come.
   */
  trust: StartupTrust;
  /** Prometheus metrics listener (local only). Absent or null: no metrics listener. */
  metrics?: { host?: string; port: number } | null;
  limits?: GatewayLimitsInput;
}

/** The configuration with defaults filled in, checked once. */
export interface ResolvedGatewayConfig extends Omit<GatewayInstanceConfig, "limits" | "tunnel" | "metrics"> {
  /** "<name>-<index>", used in logs, metrics and the tunnel hello. */
  instanceName: string;
  tunnel: { host: string; port: number; siteCaPem: string; cert: PemPair };
  metrics: { host: string; port: number } | null;
  limits: GatewayLimits;
}

/**
 * Fills defaults and validates; throws ValidationError naming the field.
 *
 * @example
 * const cfg = resolveGatewayConfig({ name: "cmg1", index: 0, serverCert, client: { host: "0.0.0.0", port: 443 }, tunnel: { host: "0.0.0.0", siteCaPem } });
 */
export function resolveGatewayConfig(cfg: GatewayInstanceConfig): ResolvedGatewayConfig {
  if (!cfg.name || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(cfg.name)) throw new ValidationError("name", "letters, digits, dots and hyphens, at most 63");
  if (!Number.isInteger(cfg.index) || cfg.index < 0 || cfg.index > 15) throw new ValidationError("index", "an integer from 0 to 15");
  checkPair("serverCert", cfg.serverCert);
  if (cfg.tunnel.cert) checkPair("tunnel.cert", cfg.tunnel.cert);
  try {
    if (!new X509Certificate(cfg.tunnel.siteCaPem).ca) throw new Error("not a CA");
  } catch {
    throw new ValidationError("tunnel.siteCaPem", "must be the site's CA certificate (PEM)");
  }
  if (!cfg.trust || cfg.trust.settingsKeys.length === 0) throw new ValidationError("trust.settingsKeys", "at least one settings-signing key of the site (from the start-up bundle): without one no settings can ever be applied");
  trustedKeys(cfg.trust.settingsKeys);
  if (!Number.isSafeInteger(cfg.trust.minRevision) || cfg.trust.minRevision < 0) throw new ValidationError("trust.minRevision", "a whole number from 0");
  checkPort("client.port", cfg.client.port);
  const tunnelPort = cfg.tunnel.port ?? DEFAULT_TUNNEL_PORT_BASE + cfg.index;
  checkPort("tunnel.port", tunnelPort);
  if (cfg.metrics) checkPort("metrics.port", cfg.metrics.port);
  const limits: GatewayLimits = {
    ...DEFAULT_LIMITS,
    ...cfg.limits,
    maxRequestBodyBytes: { ...DEFAULT_LIMITS.maxRequestBodyBytes, ...cfg.limits?.maxRequestBodyBytes },
  };
  for (const [k, v] of Object.entries(limits)) {
    if (typeof v === "number" && (!Number.isFinite(v) || v < 0)) throw new ValidationError(`limits.${k}`, "a non-negative number");
  }
  if (limits.maxAttempts < 1) throw new ValidationError("limits.maxAttempts", "at least 1");
  // What the gateway accepts must fit what the connection point accepts once the gateway's own
  // headers are added: a larger request would be refused on the tunnel instead of with 431 here.
  const headerRoom = CONNECTION_POINT_H2.maxHeaderListSize - GATEWAY_ADDED_HEADERS.bytes;
  if (limits.maxHeaderBytes > headerRoom) throw new ValidationError("limits.maxHeaderBytes", `at most ${headerRoom} (the connection point's header list limit less the gateway's own headers)`);
  const countRoom = CONNECTION_POINT_H2.maxHeaderListPairs - GATEWAY_ADDED_HEADERS.count;
  if (limits.maxHeaderCount > countRoom || limits.maxHeaderCount < 1) throw new ValidationError("limits.maxHeaderCount", `from 1 to ${countRoom} (the connection point's header count limit less the gateway's own headers)`);
  return {
    name: cfg.name,
    index: cfg.index,
    instanceName: `${cfg.name}-${cfg.index}`,
    serverCert: cfg.serverCert,
    client: cfg.client,
    tunnel: { host: cfg.tunnel.host, port: tunnelPort, siteCaPem: cfg.tunnel.siteCaPem, cert: cfg.tunnel.cert ?? cfg.serverCert },
    trust: cfg.trust,
    metrics: cfg.metrics ? { host: cfg.metrics.host ?? "127.0.0.1", port: cfg.metrics.port } : null,
    limits,
  };
}

function checkPair(field: string, pair: PemPair): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.certPem);
  } catch {
    throw new ValidationError(`${field}.certPem`, "must be a PEM certificate");
  }
  let key;
  try {
    key = createPrivateKey(pair.keyPem);
  } catch {
    throw new ValidationError(`${field}.keyPem`, "must be an unencrypted PEM private key");
  }
  if (!cert.checkPrivateKey(key)) throw new ValidationError(`${field}.keyPem`, "does not belong to the certificate");
}

function checkPort(field: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ValidationError(field, "a TCP port from 0 to 65535");
}
