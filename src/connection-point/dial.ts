/**
 * Dialling one tunnel: TCP to the instance (through the server's proxy when the caller's `dial`
 * goes through Egress), then TLS with the connection point's tunnel certificate, checked against
 * the site CA, and the tunnel's ALPN. Every step has a time limit and stops when the tunnel does.
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { NetCode, NetError } from "../errors.ts";
import { PROTOCOL_VERSIONS, TUNNEL_ALPNS, alpnVersion } from "../wire/tunnel/protocol.ts";
import { TLS_POLICY } from "../pki/tls-policy.ts";

/** A gateway instance to keep tunnels to. */
export interface GatewayEndpoint {
  host: string;
  port: number;
  /** Name to check on the instance's tunnel certificate (default: host). */
  servername?: string;
}

export interface DialOptions {
  dial: (host: string, port: number) => Promise<Socket>;
  tls: { certPem: string; keyPem: string; ca: string[] };
  /** Limit for the TCP dial, and again for the TLS handshake. */
  timeoutMs: number;
  /** A refused certificate or a listener that is not ours (counted in the metrics). */
  onHandshakeFailure: () => void;
}

/**
 * A TLS socket to the instance, ready for reverse HTTP/2; null when `signal` aborted meanwhile.
 *
 * @example
 * const socket = await dialTunnel({ host: "cmg.contoso.com", port: 10140 }, { dial, tls, timeoutMs: 15_000, onHandshakeFailure }, stopper.signal);
 */
export async function dialTunnel(endpoint: GatewayEndpoint, o: DialOptions, signal: AbortSignal): Promise<TLSSocket | null> {
  const { host, port } = endpoint;
  const raw = await withTimeout(o.dial(host, port), o.timeoutMs, () =>
    new NetError(NetCode.TIMEOUT, "gateway", host, `dialling ${host}:${port} took longer than ${o.timeoutMs} ms`),
  );
  if (signal.aborted) {
    raw.destroy();
    return null;
  }
  // Small frames (HEADERS, then DATA) must leave at once: Nagle would hold the second one back
  // until the first is acknowledged. Set on the TCP socket itself, before TLS wraps it.
  raw.setNoDelay(true);
  const socket = await handshake(raw, endpoint, o);
  if (signal.aborted) {
    socket.destroy();
    return null;
  }
  socket.setKeepAlive(true, 30_000);
  socket.setNoDelay(true);
  return socket;
}

function handshake(raw: Socket, endpoint: GatewayEndpoint, o: DialOptions): Promise<TLSSocket> {
  const { host, port } = endpoint;
  const name = endpoint.servername ?? host;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: raw,
      host: name,
      servername: isIP(name) ? undefined : name,
      ca: o.tls.ca,
      cert: o.tls.certPem,
      key: o.tls.keyPem,
      // Every version this release speaks, newest first: an instance of the previous release picks
      // the one it speaks (MIN_PROTOCOL_VERSION), a newer one the newest both speak.
      ALPNProtocols: [...TUNNEL_ALPNS],
      // TLS 1.3, or 1.2 with ECDHE and AEAD suites only, as the tunnel listener.
      ...TLS_POLICY,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NetError(NetCode.TIMEOUT, "gateway", host, `TLS with ${host}:${port} did not complete within ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      if (alpnVersion(socket.alpnProtocol) === null) {
        socket.destroy();
        o.onHandshakeFailure();
        reject(new NetError(NetCode.SECURITY, "gateway", host, `${host}:${port} is not an OpenCMG tunnel listener speaking protocol ${PROTOCOL_VERSIONS.join(" or ")} (ALPN ${String(socket.alpnProtocol)})`));
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
      o.onHandshakeFailure();
      reject(new NetError(NetCode.SECURITY, "gateway", host, `TLS with ${host}:${port} failed: ${err.message}`, { cause: err }));
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

/** Direct TCP (no proxy): resolves once connected. */
export function directDial(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}
