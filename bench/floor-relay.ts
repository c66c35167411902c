/**
 * The floor for row F of bench/gateway.ts: the same topology as the product (HTTPS in, reverse
 * HTTP/2 over a TLS connection the connection point dialled, undici to the backend) in a few
 * lines of plain Node, with none of the product's work: no client-certificate checks beyond the
 * handshake, no URL map, header rewriting, limits, failover, metrics or logs. What D costs above
 * F is the product's own cost; what F costs above A is Node's.
 */
import http2, { type ClientHttp2Session } from "node:http2";
import https from "node:https";
import tls from "node:tls";
import { Agent } from "undici";
import { TUNNEL_H2 } from "../src/wire/tunnel/h2.ts";

export interface FloorSetup {
  cert: string;
  key: string;
  /** CAs the client certificate must chain to (checked by OpenSSL in the handshake only). */
  clientCa: string[];
  clientPort: number;
  tunnelPort: number;
  backendUrl: string;
  /** Tunnels the floor connection point dials. */
  tunnels: number;
}

/** The product's tunnel windows and frame size, so F and D differ only in the work done per request. */
const H2 = { initialWindowSize: TUNNEL_H2.streamWindow, maxFrameSize: TUNNEL_H2.maxFrameSize };

/** The floor gateway: resolves once both listeners are bound. */
export async function startFloorGateway(o: FloorSetup): Promise<{ ready(): boolean }> {
  const sessions: ClientHttp2Session[] = [];
  const tunnels = tls.createServer({ cert: o.cert, key: o.key }, (socket) => {
    socket.setNoDelay(true);
    const s = http2.connect("https://floor.invalid", { createConnection: () => socket, settings: H2 });
    s.on("connect", () => {
      s.setLocalWindowSize(TUNNEL_H2.connectionWindow);
      sessions.push(s);
    });
    s.on("error", () => {});
    s.on("close", () => sessions.splice(sessions.indexOf(s), 1));
  });
  let turn = 0;
  const clients = https.createServer({ cert: o.cert, key: o.key, ca: o.clientCa, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const s = sessions[turn++ % sessions.length];
    if (!s) return void res.writeHead(503).end();
    const st = s.request({ ":method": req.method ?? "GET", ":path": req.url ?? "/" }, { endStream: true });
    st.on("response", (h) => {
      res.writeHead(Number(h[":status"]), { "content-length": h["content-length"] });
      st.pipe(res);
    });
    st.on("error", () => res.destroy());
  });
  await Promise.all([
    new Promise<void>((r) => tunnels.listen(o.tunnelPort, "127.0.0.1", r)),
    new Promise<void>((r) => clients.listen(o.clientPort, "127.0.0.1", r)),
  ]);
  return { ready: () => sessions.length > 0 };
}

/** The floor connection point: dials the tunnels and answers each stream from the backend. */
export function startFloorConnectionPoint(o: FloorSetup): void {
  const agent = new Agent();
  const origin = new URL(o.backendUrl).origin;
  for (let i = 0; i < o.tunnels; i++) {
    const socket = tls.connect({ port: o.tunnelPort, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["h2"] }, () => {
      socket.setNoDelay(true);
      const session = http2.performServerHandshake(socket, { settings: H2 });
      session.on("stream", (stream, headers) => {
        stream.on("error", () => {});
        agent
          .stream({ origin, path: String(headers[":path"]), method: "GET" }, ({ statusCode, headers: h }) => {
            stream.respond({ ":status": statusCode, "content-length": String(h["content-length"]) });
            return stream;
          })
          .catch(() => stream.destroy());
      });
    });
  }
}
