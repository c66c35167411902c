/**
 * The floors for rows F and F1 of bench/gateway.ts: the same topology as the product (HTTPS in, a
 * reverse tunnel over TLS connections the connection point dialled, undici to the backend) in a
 * few lines of plain Node, with none of the product's work: no client-certificate checks beyond
 * the handshake, no URL map, header rewriting, limits, failover, metrics or logs. What D costs
 * above F is the product's own cost; what F costs above A is Node's.
 *
 * F: the tunnel is reverse HTTP/2 (the instance is the HTTP/2 client, one stream per request), as
 * the product's tunnel protocol 1. F1: the tunnel is a pool of reverse HTTP/1.1 connections (each
 * TLS connection the connection point dialled carries one request at a time, kept alive; the
 * instance is its HTTP/1.1 client, the connection point runs an HTTP/1.1 server over it).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type ClientHttp2Session } from "node:http2";
import https from "node:https";
import tls, { type TLSSocket } from "node:tls";
import { Agent, Client } from "undici";
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
  /** F1: its own listeners and the reverse HTTP/1.1 connections its connection point keeps. */
  h1: { clientPort: number; tunnelPort: number; connections: number };
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

/**
 * One reverse HTTP/1.1 connection as the instance's client side: an undici client that never
 * opens a socket but uses the one the connection point dialled (kept alive, one request at a time).
 * The socket is handed over once (a client that lost it must not loop on it), on the next tick:
 * undici ignores a connector that answers synchronously.
 */
class ReverseH1 {
  readonly client: Client;
  constructor(readonly socket: TLSSocket) {
    let given = false;
    this.client = new Client("http://floor.invalid", {
      pipelining: 1,
      // The connection point's connections wait idle in the pool: undici must not close them (its default: 4 s).
      keepAliveTimeout: 3_600_000,
      keepAliveMaxTimeout: 3_600_000,
      connect: (_o, cb) =>
        void process.nextTick(() => {
          if (given) return cb(new Error("the pooled connection is gone"), null);
          given = true;
          cb(null, socket);
        }),
    });
  }
}

/** The F1 floor gateway: a pool of idle reverse HTTP/1.1 connections, requests queued when none is idle. */
export async function startFloorH1Gateway(o: FloorSetup): Promise<{ ready(): boolean }> {
  const idle: ReverseH1[] = [];
  const waiting: ((c: ReverseH1) => void)[] = [];
  const release = (c: ReverseH1): void => {
    if (c.socket.destroyed) return;
    const w = waiting.shift();
    if (w) w(c);
    else idle.push(c);
  };
  const tunnels = tls.createServer({ cert: o.cert, key: o.key }, (socket) => {
    socket.setNoDelay(true);
    const c = new ReverseH1(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
      void c.client.destroy().catch(() => {});
    });
    release(c);
  });
  const relay = (c: ReverseH1, req: IncomingMessage, res: ServerResponse): void => {
    c.client
      .stream({ method: "GET", path: req.url ?? "/" }, ({ statusCode, headers: h }) => {
        res.writeHead(statusCode, { "content-length": String(h["content-length"]) });
        return res;
      })
      .then(
        () => release(c),
        () => res.destroy(),
      );
  };
  const clients = https.createServer({ cert: o.cert, key: o.key, ca: o.clientCa, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const c = idle.pop();
    if (c) relay(c, req, res);
    else waiting.push((x) => relay(x, req, res));
  });
  await Promise.all([
    new Promise<void>((r) => tunnels.listen(o.h1.tunnelPort, "127.0.0.1", r)),
    new Promise<void>((r) => clients.listen(o.h1.clientPort, "127.0.0.1", r)),
  ]);
  return { ready: () => idle.length >= o.h1.connections };
}

/** The F1 floor connection point: dials the pool and answers each request on it from the backend. */
export function startFloorH1ConnectionPoint(o: FloorSetup): void {
  const agent = new Agent();
  const origin = new URL(o.backendUrl).origin;
  const server = http.createServer({ keepAliveTimeout: 0 }, (req, res) => {
    agent
      .stream({ origin, path: req.url ?? "/", method: "GET" }, ({ statusCode, headers: h }) => {
        res.writeHead(statusCode, { "content-length": String(h["content-length"]) });
        return res;
      })
      .catch(() => res.destroy());
  });
  // Keeps the pool at its size: a connection that closes is dialled again.
  const dial = (): void => {
    const socket = tls.connect({ port: o.h1.tunnelPort, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
      socket.setNoDelay(true);
      server.emit("connection", socket);
    });
    socket.on("error", () => {});
    socket.once("close", () => void setTimeout(dial, 100).unref());
  };
  for (let i = 0; i < o.h1.connections; i++) dial();
}
