/**
 * The reverse HTTP/2 side of one tunnel: on the TLS socket it dialled, the connection point is the
 * HTTP/2 *server* (`http2.performServerHandshake`). The gateway's first stream is the control
 * stream (hello, settings and their acknowledgements, one JSON message a line); every other stream
 * is a client request, handed to the forwarder once the tunnel is connected.
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import { NetCode, NetError } from "../errors.ts";
import { Header, alpnVersion, controlPath, parseGatewayMessage, readControlLines, tunnelAlpn, type GatewayMessage } from "../wire/tunnel/protocol.ts";
import { keepAlive } from "../wire/tunnel/keepalive.ts";
import { CONNECTION_POINT_H2 } from "../wire/tunnel/h2.ts";
import type { TunnelSlot } from "./tunnel.ts";

/**
 * Serves reverse HTTP/2 on `socket` until it closes. Resolves true if the tunnel got as far as the
 * control stream (the reconnect backoff starts over then).
 *
 * @example
 * const wasUp = await serveTunnel(slot, await dialTunnel(...));
 */
export function serveTunnel(slot: TunnelSlot, socket: TLSSocket): Promise<boolean> {
  return new Promise((resolve) => {
    const { ctx } = slot;
    const session = http2.performServerHandshake(socket, {
      maxSessionMemory: CONNECTION_POINT_H2.maxSessionMemoryMb,
      maxHeaderListPairs: CONNECTION_POINT_H2.maxHeaderListPairs,
      settings: {
        maxHeaderListSize: CONNECTION_POINT_H2.maxHeaderListSize,
        initialWindowSize: CONNECTION_POINT_H2.streamWindow,
        maxConcurrentStreams: CONNECTION_POINT_H2.maxConcurrentStreams,
        maxFrameSize: CONNECTION_POINT_H2.maxFrameSize,
      },
    });
    slot.session = session;
    slot.socket = socket;
    const openedAt = Date.now();
    let up = false;
    const gateway = `${slot.endpoint.host}:${slot.endpoint.port}`;
    const countBytes = byteCounter(socket, (sent, received) => ctx.onBytes(gateway, sent, received));
    slot.flushBytes = countBytes;
    try {
      session.setLocalWindowSize(CONNECTION_POINT_H2.connectionWindow);
    } catch {
      session.once("connect", () => session.setLocalWindowSize(CONNECTION_POINT_H2.connectionWindow));
    }

    // The gateway must open its control stream promptly; a listener that does not is not ours.
    const controlTimer = setTimeout(() => {
      ctx.log.error(`${slot.label}: the gateway opened no control stream within ${ctx.dialTimeoutMs} ms; closing`);
      session.destroy();
    }, ctx.dialTimeoutMs);

    // The version the TLS handshake chose (dialTunnel accepts only one this release speaks).
    const version = alpnVersion(socket.alpnProtocol) ?? 0;
    const pinger = keepAlive(session, {
      intervalMs: ctx.pingMs,
      received: () => socket.bytesRead,
      onTick: countBytes,
      onMissed: () => ctx.log.warn(`${slot.label}: the gateway answered no keep-alive PING and sent nothing for ${(2 * ctx.pingMs) / 1000} s; closing the tunnel and dialling again`),
    });

    session.on("stream", (stream, headers, flags) => {
      if (headers[":path"] === controlPath(version)) {
        clearTimeout(controlTimer);
        if (slot.control) {
          stream.respond({ ":status": 409 });
          stream.end();
          return;
        }
        up = answerControl(slot, session, stream, headers, version);
        return;
      }
      if (slot.state !== "connected") {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      ctx.onStream(stream, headers, flags, gateway);
    });
    session.on("error", (err) => slot.fail(err));
    session.on("goaway", (code) => {
      if (code !== http2.constants.NGHTTP2_NO_ERROR) ctx.log.warn(`${slot.label}: the gateway sent GOAWAY with code ${code}`);
    });
    session.once("close", () => {
      clearTimeout(controlTimer);
      clearInterval(pinger);
      if (!up && !slot.stopping && (!slot.lastError || slot.lastError.at.getTime() < openedAt)) slot.fail(refusedBeforeControl(slot));
      countBytes();
      closed(slot);
      resolve(up);
    });
  });
}

/** Reports the bytes the socket moved since the last call. */
function byteCounter(socket: TLSSocket, onBytes: (sent: number, received: number) => void): () => void {
  let sent = 0;
  let received = 0;
  return () => {
    const s = socket.bytesWritten - sent;
    const r = socket.bytesRead - received;
    sent += s;
    received += r;
    if (s || r) onBytes(s, r);
  };
}

/**
 * With TLS 1.3 the client finishes its handshake before the server has checked the client
 * certificate; an instance that refuses it just closes the connection.
 */
function refusedBeforeControl(slot: TunnelSlot): NetError {
  const { host, port } = slot.endpoint;
  return new NetError(
    NetCode.SECURITY,
    "gateway",
    host,
    `${host}:${port} closed the tunnel before opening its control stream: it most likely refused this ` +
      `connection point's tunnel certificate (instances accept only certificates issued by the site CA)`,
  );
}

/** The session is gone: the slot forgets it. */
function closed(slot: TunnelSlot): void {
  slot.flushBytes = () => {};
  slot.session = null;
  slot.socket = null;
  slot.control = null;
  slot.instance = null;
  slot.revisionInForce = null;
  if (slot.connectedSince) {
    const up = Math.round((Date.now() - slot.connectedSince.getTime()) / 1000);
    slot.ctx.log.info(`${slot.label} closed after ${up} s`);
  }
  slot.connectedSince = null;
}

/** Answers the gateway's control stream: hello, settings; reads the gateway's hello and acks. True once connected. */
function answerControl(slot: TunnelSlot, session: ServerHttp2Session, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, version: number): boolean {
  const { ctx } = slot;
  const asked = headers[Header.protocol];
  if (asked !== String(version)) {
    ctx.log.error(`${slot.label}: the gateway speaks tunnel protocol ${String(asked)} on a tunnel that negotiated ${version}`);
    stream.respond({ ":status": 400, [Header.protocol]: String(version) }, { endStream: true });
    session.close();
    return false;
  }
  slot.control = stream;
  stream.respond({ ":status": 200, "content-type": "application/x-ndjson", [Header.protocol]: String(version) });
  stream.on("error", (err) => ctx.log.warn(`${slot.label}: control stream error: ${err.message}`));
  stream.once("close", () => {
    if (slot.control === stream) slot.control = null;
    // A tunnel without its control stream is not managed any more: let it go and dial again.
    session.close();
  });
  slot.send({ type: "hello", protocol: version, connectionPoint: ctx.connectionPoint });
  slot.send({ type: "settings", document: ctx.settings() });

  readControlLines(
    stream,
    (line) => {
      let m;
      try {
        m = parseGatewayMessage(line);
      } catch (err) {
        ctx.log.warn(`${slot.label}: unreadable control message ignored: ${(err as Error).message}`);
        return;
      }
      if (!m) return;
      onGatewayMessage(slot, m);
      ctx.changed();
    },
    (err) => {
      ctx.log.error(`${slot.label}: control stream: ${err.message}`);
      session.destroy();
    },
  );
  slot.connectedSince = new Date();
  slot.lastError = null;
  slot.setState("connected");
  ctx.log.info(`${slot.label} connected (reverse HTTP/2, ${tunnelAlpn(version)})`);
  return true;
}

/** What the instance says about the settings it enforces. */
function onGatewayMessage(slot: TunnelSlot, m: GatewayMessage): void {
  const { serviceLog } = slot.ctx;
  if (m.type === "hello") {
    slot.instance = m.instance;
    slot.revisionInForce = m.revision;
  } else if (m.type === "settings-applied") {
    slot.revisionInForce = m.revision;
    serviceLog.info(`Gateway instance ${slot.instance ?? "?"} applied settings revision ${m.revision} (${slot.label})`);
  } else if (m.type === "settings-ignored") {
    slot.revisionInForce = m.current;
  } else if (m.type === "settings-in-force") {
    slot.revisionInForce = m.revision;
  } else if (m.type === "workers") {
    slot.ctx.onWorkers?.(slot, m.ports);
  } else if (m.type === "settings-rejected") {
    serviceLog.error(`Gateway instance ${slot.instance ?? "?"} rejected settings revision ${m.revision}: ${m.error}`);
  }
}
