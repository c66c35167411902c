/**
 * The tunnel listener: where connection points dial in. TLS with mutual authentication (only
 * certificates issued by the site CA, and of those only the connection points the site admits in
 * its signed settings or the start-up bundle), then reverse HTTP/2: on each accepted connection the
 * gateway is the HTTP/2 *client* (`http2.connect` over the accepted socket), because the
 * connection point, which dialled, serves the requests. The first stream the gateway opens is the
 * control stream, on which the connection point sends its hello and the settings.
 *
 * Strangers can reach this port too: connections whose handshake is not done are bounded apart
 * (admission.ts), in total and per address, and closed after the handshake timeout; only
 * authenticated tunnels count against maxTunnels, so a connection point always gets back in.
 */
import { X509Certificate } from "node:crypto";
import http2, { type ClientHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import { topics, type Source } from "../../observe/channels.ts";
import type { GatewayLimits, PemPair } from "../config.ts";
import type { GatewayMetrics } from "../metrics.ts";
import {
  controlPath,
  connectionPointName,
  Header,
  readControlLines,
  PROTOCOL_VERSIONS,
  TUNNEL_ALPNS,
  alpnVersion,
  encodeMessage,
  parseConnectorMessage,
  type GatewayMessage,
} from "../../wire/tunnel/protocol.ts";
import { keepAlive } from "../../wire/tunnel/keepalive.ts";
import { TUNNEL_H2 } from "../../wire/tunnel/h2.ts";
import type { SettingsStore } from "../settings-store.ts";
import { Tunnel, type TunnelPool } from "./tunnel-pool.ts";
import { Admission, listenGated, worthLogging } from "../admission.ts";
import { TLS_POLICY } from "../../pki/tls-policy.ts";
import { connectionPointIdentity, type ConnectionPointIdentity } from "../../wire/tunnel/signed-settings.ts";


export interface TunnelListenerOptions {
  /** The instance: tunnel states and settings are published with it. */
  source: Source;
  host: string;
  port: number;
  cert: PemPair;
  siteCaPem: string;
  instanceName: string;
  limits: GatewayLimits;
  pool: TunnelPool;
  settings: SettingsStore;
  metrics: GatewayMetrics;
  /** CMGService.log */
  log: ComponentLog;
  /**
   * One worker of several (workers.ts): its index and every worker's tunnel port, told to each
   * connection point (the `workers` message) so it dials them all. The port is this worker's alone.
   */
  worker?: { index: number; tunnelPorts: () => number[] };
}

export interface TunnelListener {
  port: number;
  /** Connections in TLS handshake now, and waiting for a handshake place (admission.ts). */
  handshakes(): { pending: number; waiting: number; limit: number };
  /** Tells every connection point the workers' tunnel ports again (they changed). */
  announceWorkers(): void;
  /** Stops accepting, closes control streams, lets requests in flight finish for `graceMs`, then cuts. */
  close(graceMs?: number): Promise<void>;
}

/**
 * @example
 * const tl = await startTunnelListener({ source, host: "0.0.0.0", port: 10140, cert, siteCaPem, instanceName: "cmg1-0", limits, pool, settings, metrics, log });
 */
export async function startTunnelListener(o: TunnelListenerOptions): Promise<TunnelListener> {
  let nextId = 1;
  const server = tls.createServer({
    cert: o.cert.certPem,
    key: o.cert.keyPem,
    ca: o.siteCaPem,
    requestCert: true,
    // Checked in "secureConnection" instead, so the log can say why a connection point was refused
    // (with true, Node drops the socket and reports only "socket hang up"). No byte of HTTP/2 is
    // exchanged before that check.
    rejectUnauthorized: false,
    // TLS 1.3, or 1.2 with ECDHE and AEAD suites only.
    ...TLS_POLICY,
    // Every version this release speaks, newest first: the newest the connection point offers too
    // is chosen, so an instance serves connection points of the previous release (MIN_PROTOCOL_VERSION).
    ALPNProtocols: [...TUNNEL_ALPNS],
    handshakeTimeout: o.limits.handshakeTimeoutMs,
  });
  // Not server.maxConnections: it would count connections that never start TLS as tunnels, and a
  // stranger holding idle TCP connections would keep connection points out. Unfinished handshakes
  // are bounded apart (oldest closed first); maxTunnels counts authenticated tunnels only.
  // An address at its cap waits for its places before any TLS work, within bounds (admission.ts).
  const admission = new Admission({
    maxPending: o.limits.maxPendingTunnels,
    maxPendingPerAddress: o.limits.maxPendingTunnelsPerAddress,
    maxWaitingPerAddress: o.limits.maxWaitingTunnelsPerAddress,
    maxWaiting: o.limits.maxWaitingTunnels,
    waitTimeoutMs: o.limits.handshakeTimeoutMs,
    graceMs: o.limits.handshakeGraceMs,
  });
  admission.onClosed = (why, address) => {
    o.metrics.gateClosed.inc({ listener: "tunnel", why });
    if (why !== "wait_timeout" && worthLogging(admission.evicted)) {
      o.log.warn(`Tunnel listener: ${admission.evicted} unfinished TLS handshakes closed to make room so far (latest from ${address}); someone holds connections to the tunnel port without opening a tunnel`);
    }
  };
  // A tunnel that said hello before any settings existed becomes ready when another one brings them.
  const senders = new Map<ClientHttp2Stream, (m: GatewayMessage) => void>();
  const unsubscribe = o.settings.onChange((s) => {
    // A connection point the site no longer admits loses its tunnels now, requests in flight too:
    // it may be in the hands of someone else.
    for (const t of o.pool.all()) {
      if (t.admitted && t.identity && !o.settings.admits(t.identity)) {
        t.admitted = false;
        o.log.warn(`${t.label}: closed: settings revision ${s.revision} no longer admits connection point ${describeIdentity(t.identity)}`);
        t.session.destroy();
      }
    }
    for (const t of o.pool.all()) if (t.greeted && t.admitted && t.state === "handshake") setState(t, "ready");
    // Every connection point learns what the instance enforces, not only the one that sent it.
    for (const send of senders.values()) send({ type: "settings-in-force", revision: s.revision });
  });

  server.on("tlsClientError", (err, socket) => {
    admission.settled(socket);
    // Node leaves the socket open after a failed handshake (a handshake timeout included) when
    // "tlsClientError" has a listener: without this, a silent peer holds the connection forever.
    socket.destroy();
    o.metrics.handshakeFailures.inc({ listener: "tunnel" });
    const from = socket.remoteAddress ? ` from ${socket.remoteAddress}:${socket.remotePort}` : "";
    o.log.warn(`Tunnel TLS handshake${from} failed: ${err.message}`);
  });

  server.on("secureConnection", (socket: TLSSocket) => {
    admission.settled(socket);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (!socket.authorized) {
      o.metrics.handshakeFailures.inc({ listener: "tunnel" });
      const peer = socket.getPeerX509Certificate();
      const who = peer ? `certificate "${peer.subject.replaceAll("\n", ", ")}" issued by "${peer.issuer.replaceAll("\n", ", ")}"` : "no certificate";
      o.log.warn(`Tunnel from ${remote} refused: ${who} is not a connection point certificate of the site CA (${String(socket.authorizationError)})`);
      socket.destroy();
      return;
    }
    const version = alpnVersion(socket.alpnProtocol);
    if (version === null) {
      o.log.warn(`Tunnel from ${remote} refused: it speaks none of the tunnel protocol versions ${PROTOCOL_VERSIONS.join(", ")} (ALPN ${String(socket.alpnProtocol)})`);
      socket.destroy();
      return;
    }
    const peer = socket.getPeerX509Certificate();
    const cpName = peer ? connectionPointName(commonName(peer)) : "unknown";
    const identity = peer ? connectionPointIdentity(peer) : null;
    const admittedNow = identity !== null && o.settings.admits(identity);
    // Admitted tunnels count against maxTunnels; tunnels still to prove their admission are bounded
    // apart (maxPendingTunnels), so a copied certificate cannot crowd the admitted ones out.
    const tunnels = o.pool.all();
    const probation = tunnels.filter((t) => !t.admitted).length;
    if (admittedNow ? tunnels.length - probation >= o.limits.maxTunnels : probation >= o.limits.maxPendingTunnels) {
      o.log.warn(`Tunnel from ${cpName} at ${remote} refused: ${admittedNow ? `${o.limits.maxTunnels} tunnels are open (maxTunnels)` : `${o.limits.maxPendingTunnels} tunnels wait to prove their admission (maxPendingTunnels)`}`);
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
    // The URL only names the :authority default; createConnection hands over the open socket.
    const session = http2.connect("https://connection-point.opencmg.invalid", {
      createConnection: () => socket,
      maxSessionMemory: TUNNEL_H2.maxSessionMemoryMb,
      settings: { enablePush: false, initialWindowSize: TUNNEL_H2.streamWindow, maxFrameSize: TUNNEL_H2.maxFrameSize },
    });
    const tunnel = new Tunnel(nextId++, session, remote, cpName);
    tunnel.identity = identity;
    tunnel.admitted = admittedNow;
    if (!tunnel.admitted) {
      // Not listed (yet): it carries nothing until it brings the site's signed settings that admit it.
      o.log.info(`${tunnel.label}: connection point ${identity ? describeIdentity(identity) : "without a certificate"} is not admitted by ${admittedBy()}; it must bring the site's signed settings that admit it within ${o.limits.handshakeTimeoutMs} ms`);
      const timer = setTimeout(() => {
        if (!tunnel.admitted) refuse(tunnel, `it brought no signed settings that admit it within ${o.limits.handshakeTimeoutMs} ms`);
      }, o.limits.handshakeTimeoutMs);
      timer.unref();
      session.once("close", () => clearTimeout(timer));
    }
    o.pool.add(tunnel);
    publishState(tunnel, null);
    track(tunnel, version);
  });

  /** Wires one tunnel: window, keep-alive pings, control stream, and its end. */
  function track(tunnel: Tunnel, version: number): void {
    const { session } = tunnel;
    session.on("connect", () => session.setLocalWindowSize(TUNNEL_H2.connectionWindow));
    session.on("error", (err) => o.log.warn(`${tunnel.label}: ${err.message}`));
    session.on("goaway", () => {
      // The connection point is draining: no new requests here; the ones in flight finish.
      if (tunnel.state !== "closed") setState(tunnel, "draining");
    });
    session.on("close", () => {
      clearInterval(pinger);
      o.pool.remove(tunnel);
      setState(tunnel, "closed");
    });

    const socket = session.socket;
    const pinger = keepAlive(session, {
      intervalMs: o.limits.tunnelPingMs,
      received: () => socket.bytesRead,
      onMissed: () => o.log.warn(`${tunnel.label} answered no keep-alive PING and sent nothing for ${(2 * o.limits.tunnelPingMs) / 1000} s; closing it (its connection point dials again)`),
    });

    openControl(tunnel, version);
  }

  /** The control stream, in the protocol version the TLS handshake chose. */
  function openControl(tunnel: Tunnel, version: number): void {
    const control = tunnel.session.request({
      ":method": "POST",
      ":path": controlPath(version),
      [Header.protocol]: String(version),
      [Header.instance]: o.instanceName,
      "content-type": "application/x-ndjson",
    });
    tunnel.control = control;
    const send = (m: GatewayMessage): void => {
      if (!control.destroyed && control.writable) control.write(encodeMessage(m));
    };
    senders.set(control, send);
    send({ type: "hello", protocol: version, instance: o.instanceName, revision: o.settings.current()?.revision ?? null });
    const workers = workersMessage();
    if (workers) send(workers);

    const fail = (why: string): void => {
      o.log.error(`${tunnel.label}: control stream: ${why}; closing the tunnel`);
      tunnel.session.destroy();
    };
    control.on("response", (headers) => {
      const status = headers[":status"];
      const answered = headers[Header.protocol];
      if (status !== 200 || answered !== String(version)) {
        fail(`the connection point answered status ${status} with protocol version ${String(answered)} (the tunnel negotiated ${version})`);
      }
    });
    readControlLines(
      control,
      (line) => {
        let m;
        try {
          m = parseConnectorMessage(line);
        } catch (err) {
          const revision = safeRevision(line);
          if (revision !== null) send({ type: "settings-rejected", revision, error: (err as Error).message });
          o.log.error(`${tunnel.label}: invalid control message refused: ${(err as Error).message}`);
          if (!tunnel.admitted) {
            refuse(tunnel, "it sent an invalid control message");
            return false;
          }
          return;
        }
        if (!m) return;
        if (m.type === "hello") {
          if (m.protocol !== version) {
            fail(`the connection point speaks protocol ${m.protocol}`);
            return false;
          }
          tunnel.greeted = true;
          if (m.connectionPoint && m.connectionPoint !== tunnel.connectionPoint) {
            o.log.info(`${tunnel.label}: connection point calls itself "${m.connectionPoint}"`);
          }
        } else if (m.type === "settings") {
          const r = o.settings.offer(m.document);
          if (r.result === "refused") {
            const current = o.settings.current()?.revision;
            // An older document of the site is a connection point behind the others (a warning); anything else is not the site's.
            const line = `${tunnel.label}: settings refused (${r.error.reason}): ${r.error.message}; ${current === undefined ? "no settings in force yet" : `keeping revision ${current}`}`;
            if (r.error.reason === "stale_revision") o.log.warn(line);
            else o.log.error(line);
            send({ type: "settings-rejected", revision: r.error.revision ?? 0, error: `${r.error.reason}: ${r.error.message}` });
            if (!tunnel.admitted) {
              refuse(tunnel, "the settings it brought are not the site's");
              return false;
            }
            return;
          }
          const s = r.settings;
          if (r.result === "applied") {
            o.log.info(`${tunnel.label}: settings revision ${s.revision} applied (signed by the site; ${s.connectionPoints.length} connection point certificate(s) admitted; settings-signing keys ${o.settings.trustedKids().join(", ")})`);
            if (topics.settingsApplied.active) {
              topics.settingsApplied.publish({
                source: o.source,
                revision: s.revision,
                from: tunnel.connectionPoint,
                trustedRoots: s.trustedRoots.length,
                intermediates: s.intermediates.length,
                crlCheck: s.crlCheck,
                roles: Object.keys(s.urlMap).length,
              });
            }
            send({ type: "settings-applied", revision: s.revision });
          } else {
            send({ type: "settings-ignored", revision: s.revision, current: s.revision });
          }
          if (!tunnel.admitted) {
            if (!tunnel.identity || !o.settings.admits(tunnel.identity)) {
              refuse(tunnel, `the site's settings (revision ${s.revision}) do not admit it`);
              return false;
            }
            tunnel.admitted = true;
            o.log.info(`${tunnel.label}: connection point ${describeIdentity(tunnel.identity)} admitted by settings revision ${s.revision}`);
          }
        }
        // A tunnel carries requests once its connection point is admitted and said hello, and the instance has settings.
        if (tunnel.greeted && tunnel.admitted && tunnel.state === "handshake" && o.settings.current()) setState(tunnel, "ready");
      },
      (err) => fail(err.message),
    );
    control.on("error", (err) => o.log.warn(`${tunnel.label}: control stream error: ${err.message}`));
    control.on("close", () => {
      senders.delete(control);
      // Without its control stream a tunnel cannot be kept in step: drain it and let the
      // connection point dial again.
      if (!tunnel.session.destroyed) {
        setState(tunnel, "draining");
        tunnel.retire();
      }
    });
  }

  /** The workers' tunnel ports, once every one is known. */
  function workersMessage(): GatewayMessage | null {
    if (!o.worker) return null;
    const ports = o.worker.tunnelPorts();
    if (ports.length === 0 || ports.some((p) => p === 0)) return null;
    return { type: "workers", worker: o.worker.index, ports };
  }

  /** Where admission comes from now, for log lines. */
  function admittedBy(): string {
    const r = o.settings.current()?.revision;
    return r === undefined ? "the start-up bundle" : `settings revision ${r}`;
  }

  /** Closes a tunnel of a connection point the site does not admit, saying why. */
  function refuse(t: Tunnel, why: string): void {
    o.metrics.handshakeFailures.inc({ listener: "tunnel" });
    o.log.warn(`${t.label} refused: connection point ${t.identity ? describeIdentity(t.identity) : "without a certificate"} is not admitted to this CMG: ${why}`);
    t.session.destroy();
  }

  function setState(t: Tunnel, state: Tunnel["state"]): void {
    if (t.state === state || t.state === "closed") return;
    const previous = t.state;
    t.state = state;
    o.pool.changed();
    publishState(t, previous);
  }

  /** Metrics and log lines subscribe to tunnel states (src/gateway/observers.ts). */
  function publishState(t: Tunnel, previous: Tunnel["state"] | null): void {
    if (!topics.tunnelState.active) return;
    topics.tunnelState.publish({ source: o.source, side: "gateway", tunnel: t.label, id: t.id, connectionPoint: t.connectionPoint, state: t.state, previous, served: t.served });
  }

  // A worker's tunnel port is its own: bound in the worker, not handed to the cluster primary.
  const front = await listenGated(server, admission, o.host, o.port, undefined, o.worker ? "exclusive" : undefined);
  front.on("error", (err) => o.log.error(`Tunnel listener error: ${err.message}`));
  server.on("error", (err) => o.log.error(`Tunnel listener error: ${err.message}`));
  const port = (front.address() as AddressInfo).port;
  o.log.info(`Tunnel listener of ${o.instanceName} on ${o.host}:${port}, accepting connection points with certificates of the site CA that the site admits`);

  return {
    port,
    handshakes: () => ({ pending: admission.pending, waiting: admission.waiting, limit: admission.limit }),
    announceWorkers() {
      const m = workersMessage();
      if (m) for (const send of senders.values()) send(m);
    },
    async close(graceMs = 5000) {
      unsubscribe();
      front.close();
      server.close(() => {});
      const tunnels = o.pool.all();
      for (const t of tunnels) {
        setState(t, "draining");
        t.retire();
      }
      await waitAll(tunnels, graceMs);
    },
  };
}

/**
 * Waits until every tunnel has closed, destroying the stragglers after `graceMs`. Bounded: a
 * session whose socket died before its HTTP/2 handshake completed may never emit "close", and a
 * stop must not hang on it.
 */
async function waitAll(tunnels: Tunnel[], graceMs: number): Promise<void> {
  // "closed" is set by the session's close handler; a destroyed session may not have emitted it yet.
  const open = tunnels.filter((t) => t.state !== "closed").map((t) => t.session);
  if (open.length === 0) return;
  await new Promise<void>((resolve) => {
    let left = open.length;
    let giveUp: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      for (const s of open) s.destroy();
      giveUp = setTimeout(resolve, 1000);
    }, graceMs);
    for (const s of open) {
      s.once("close", () => {
        if (--left === 0) {
          clearTimeout(timer);
          clearTimeout(giveUp);
          resolve();
        }
      });
    }
  });
}

function describeIdentity(i: ConnectionPointIdentity): string {
  return `${i.name} (certificate serial ${i.serial})`;
}

function commonName(cert: X509Certificate): string {
  const m = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject);
  return m?.[1] ?? "";
}

function safeRevision(line: string): number | null {
  try {
    return (JSON.parse(line) as { type?: string }).type === "settings" ? 0 : null;
  } catch {
    return null;
  }
}
