/**
 * The client listener: HTTPS for devices, with the server authentication certificate, TLS_POLICY
 * (TLS 1.3, or 1.2 with ECDHE and AEAD suites only), HTTP/2 and HTTP/1.1 by ALPN. It asks every
 * client for a certificate but accepts the handshake without one (client-auth.ts decides per
 * request, with a reason). The CA list sent in the certificate request follows the trusted roots and intermediates
 * of the settings in force: the secure context is replaced when they change.
 *
 * Limits, so one slow or oversized client cannot starve the others: handshake, header, request
 * and idle timeouts, a header size cap, a stream cap per HTTP/2 connection, a cap on open
 * connections (the excess is closed on accept), and caps on unfinished handshakes, in total and
 * per source address (admission.ts). HTTP/1.1 requests need a Host header.
 */
import http2, { type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ComponentLog } from "../logs/cmtrace.ts";
import type { GatewayLimits, PemPair } from "./config.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { CmgSettings } from "../wire/tunnel/protocol.ts";
import type { ClientResponse } from "./relay/router.ts";
import type { ClientRequest } from "./auth/client-cert.ts";
import { Admission, listenGated, worthLogging } from "./admission.ts";
import { paceHandshakes } from "./handshake-pace.ts";
import { TLS_POLICY } from "../pki/tls-policy.ts";
import type { TicketKeys } from "./tls-tickets.ts";

export interface ClientListenerOptions {
  host: string;
  port: number;
  serverCert: PemPair;
  limits: GatewayLimits;
  metrics: GatewayMetrics;
  /** CMGHttpHandler.log */
  log: ComponentLog;
  handler: (req: ClientRequest, res: ClientResponse) => void;
  /** Called for every HTTP/2 client session (the stream abuse guard watches it). */
  onSession?: (session: http2.ServerHttp2Session) => void;
  /**
   * Session ticket keys shared by every worker and instance of the CMG (tls-tickets.ts), from the
   * server certificate's private key: called again when the settings bring a renewed key.
   */
  tickets?: (keyPem: string) => TicketKeys;
  /**
   * One worker of several (workers.ts): the port is shared with the other workers (`reusePort`,
   * or the cluster primary on Node versions without it), and every answer names the worker.
   */
  worker?: { index: number; reusePort: boolean; refuse?: (req: ClientRequest, res: ClientResponse) => boolean };
}

export interface ClientListener {
  port: number;
  server: Http2SecureServer;
  /**
   * New trusted CAs for the certificate request, and a renewed server certificate: new handshakes
   * use them, established connections keep theirs (nothing is closed).
   */
  applySettings(s: CmgSettings): void;
  /** Connections in TLS handshake now, and waiting for a handshake place (admission.ts). */
  handshakes(): { pending: number; waiting: number; limit: number };
  close(graceMs?: number): Promise<void>;
}

/** Response header naming the worker process that answered (only when the instance runs several). */
export const WORKER_HEADER = "opencmg-worker";

/** Client-side HTTP/2 receive window per stream (uploads); the default 64 KiB slows big uploads. */
const CLIENT_STREAM_WINDOW = 256 * 1024;

/**
 * @example
 * const cl = await startClientListener({ host: "0.0.0.0", port: 443, serverCert, limits, metrics, log, handler: createRouter(deps) });
 */
export async function startClientListener(o: ClientListenerOptions): Promise<ClientListener> {
  const { limits } = o;
  const contextOptions = (ca: string[] | undefined, server: PemPair = o.serverCert) => ({
    cert: server.certPem,
    key: server.keyPem,
    ca: ca && ca.length > 0 ? ca : undefined,
    // TLS 1.3, or 1.2 with ECDHE and AEAD suites only (no static RSA, no CBC).
    ...TLS_POLICY,
  });
  const server = http2.createSecureServer({
    ...contextOptions(undefined),
    allowHTTP1: true,
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: limits.handshakeTimeoutMs,
    settings: {
      maxConcurrentStreams: limits.maxStreamsPerClient,
      maxHeaderListSize: limits.maxHeaderBytes,
      initialWindowSize: CLIENT_STREAM_WINDOW,
      enablePush: false,
    },
    maxSessionMemory: 16,
    // Header fields, pseudo-headers included: within what the connection point accepts (config.ts).
    maxHeaderListPairs: limits.maxHeaderCount + 4,
    // Buffered-but-unsent data per client session is bounded by flow control; a peer that floods
    // invalid frames or RST_STREAMs is cut off by Node's defaults (maxSessionInvalidFrames, ...).
  });
  // HTTP/1.1 limits of the embedded HTTP/1.1 server (allowHTTP1).
  const h1 = server as unknown as {
    headersTimeout: number;
    requestTimeout: number;
    maxHeaderSize: number;
    keepAliveTimeout: number;
    connectionsCheckingInterval: number;
    requireHostHeader: boolean;
  };
  // Node's HTTP/1.1 server answers 400 to an HTTP/1.1 request without Host only when this is set,
  // and the embedded HTTP/1.1 server of http2.createSecureServer leaves it unset.
  h1.requireHostHeader = true;
  h1.headersTimeout = limits.headersTimeoutMs;
  // How often Node looks for HTTP/1.1 connections past those timeouts (its default, 30 s, would let
  // a slow-headers client hold a connection well past headersTimeout): a tenth of it, 2 s at most.
  h1.connectionsCheckingInterval = Math.max(100, Math.min(2000, limits.headersTimeoutMs / 10));
  h1.requestTimeout = limits.requestTimeoutMs;
  h1.maxHeaderSize = limits.maxHeaderBytes;
  h1.keepAliveTimeout = limits.idleTimeoutMs;
  // Idle timeout for HTTP/1.1 sockets and HTTP/2 sessions alike (no listener: they are destroyed).
  server.setTimeout(limits.idleTimeoutMs);
  // Unfinished handshakes, bounded apart (in total and per address; the excess waits its turn
  // before any TLS work); the listening socket is the gate's (admission.ts).
  const admission = new Admission({
    maxPending: limits.maxPendingConnections,
    maxPendingPerAddress: limits.maxPendingPerAddress,
    maxWaitingPerAddress: limits.maxWaitingPerAddress,
    maxWaiting: limits.maxWaitingConnections,
    waitTimeoutMs: limits.handshakeTimeoutMs,
    graceMs: limits.handshakeGraceMs,
  });
  admission.onClosed = (why, address) => {
    o.metrics.gateClosed.inc({ listener: "client", why });
    if (why !== "wait_timeout" && worthLogging(admission.evicted)) o.log.warn(`Client listener: ${admission.evicted} unfinished TLS handshakes closed to make room so far (latest from ${address})`);
  };

  // Fewer handshakes at once while this process's event loop lags (a storm): the connected devices' requests go first.
  // One line when pacing starts and one when it ends: a storm leaves two, not one per change.
  const setLimit = (n: number): void => {
    const before = admission.limit;
    admission.setLimit(n);
    if (before === limits.maxPendingConnections && n < before) {
      o.log.warn(`Client listener: event loop lagging past ${limits.handshakePaceLagMs} ms; fewer TLS handshakes at once (${n}, down to ${limits.minPendingConnections}) so connected devices keep being answered; ${admission.waiting} connection(s) waiting for a handshake place`);
    } else if (n === limits.maxPendingConnections && before < n) {
      o.log.info(`Client listener: event loop caught up; up to ${n} TLS handshakes at once again`);
    }
  };
  const pace = limits.handshakePaceLagMs > 0 ? paceHandshakes(setLimit, { min: limits.minPendingConnections, max: limits.maxPendingConnections, targetLagMs: limits.handshakePaceLagMs, intervalMs: 250 }) : undefined;

  const sockets = new Set<TLSSocket>();
  server.on("secureConnection", (socket: TLSSocket) => {
    admission.settled(socket);
    // The verdict cache keys on the connection, so its certificate must not change under it.
    socket.disableRenegotiation();
    sockets.add(socket);
    o.metrics.clientConnections.inc();
    o.metrics.clientConnectionsTotal.inc();
    socket.once("close", () => {
      sockets.delete(socket);
      o.metrics.clientConnections.dec();
    });
  });
  server.on("tlsClientError", (_err, socket) => {
    admission.settled(socket);
    // A failed or timed-out handshake must not leave the connection open.
    socket.destroy();
    // Not logged per event: scanners on the internet would flood the log. The metric tells.
    o.metrics.handshakeFailures.inc({ listener: "client" });
  });
  if (o.worker) {
    const worker = String(o.worker.index);
    const refuse = o.worker.refuse;
    server.on("request", (req: ClientRequest, res: ClientResponse) => {
      // Which worker answered: operators (and the tests) see the spread across workers.
      res.setHeader(WORKER_HEADER, worker);
      if (refuse?.(req, res)) return;
      o.handler(req, res);
    });
  } else {
    server.on("request", o.handler);
  }
  // Broken HTTP/2 sessions from the internet are routine; they are not logged one by one.
  server.on("sessionError", () => {});

  // The cap on open connections is the front's: it counts every accepted connection, as the
  // server's own would have.
  let ticketKeyPem = o.serverCert.keyPem;
  let tickets = o.tickets?.(ticketKeyPem);
  tickets?.install(server);
  const front = await listenGated(server, admission, o.host, o.port, limits.maxConnections, o.worker?.reusePort ? "reusePort" : undefined);
  front.on("error", (err) => o.log.error(`Client listener error: ${err.message}`));
  server.on("error", (err) => o.log.error(`Client listener error: ${err.message}`));
  const port = (front.address() as AddressInfo).port;
  o.log.info(`Client listener on ${o.host}:${port} (TLS 1.3, or 1.2 with ECDHE+AEAD; h2 and http/1.1)`);

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    o.onSession?.(s);
    s.once("close", () => sessions.delete(s));
  });

  return {
    port,
    server,
    handshakes: () => ({ pending: admission.pending, waiting: admission.waiting, limit: admission.limit }),
    applySettings(s) {
      const pair = s.serverCert ?? o.serverCert;
      server.setSecureContext(contextOptions([...s.trustedRoots, ...s.intermediates], pair));
      // A new secure context has no ticket keys yet; a renewed certificate key gives new ones.
      if (o.tickets) {
        if (pair.keyPem !== ticketKeyPem) {
          ticketKeyPem = pair.keyPem;
          tickets = o.tickets(ticketKeyPem);
        }
        tickets?.install(server);
      }
    },
    async close(graceMs = 5000) {
      pace?.stop();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of sessions) s.destroy();
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
        // The HTTP/2 server never listened (its close only ends its sessions); the front calls
        // back once every connection is closed.
        server.close(() => {});
        front.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // GOAWAY to HTTP/2 clients so they stop sending new requests here.
        for (const s of sessions) s.close();
      });
    },
  };
}
