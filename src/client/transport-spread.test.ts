/**
 * The transport across the addresses of one name, against real TLS listeners on loopback
 * addresses of their own (one port for all): it connects by IP with the service name as server
 * name, and moves on when an address refuses the connection, never completes the handshake, or
 * is an instance that answers 503 (draining, no connection point behind it).
 */
import assert from "node:assert/strict";
import { createServer as createHttpsServer, type Server } from "node:https";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { after, before, it } from "node:test";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { REFUSAL_HEADERS } from "../wire/refusals.ts";
import { preferenceOrder, staticResolver } from "./addresses.ts";
import { GatewayRefusedError, MpTransport } from "./transport.ts";

const NAME = "cmg.contoso.test";
const SERVING = "127.0.0.31";
const DRAINING = "127.0.0.32";
const SILENT = "127.0.0.33";
const CLOSED = "127.0.0.34";
let pki: TestPki;
let port: number;
const servers: (Server | TcpServer)[] = [];
const sockets = new Set<Socket>();
/** Server name each TLS listener saw, by address. */
const seen = new Map<string, string>();

const listen = (s: Server | TcpServer, host: string): Promise<void> => new Promise((r, j) => (s.once("error", j), s.listen(port, host, () => r())));

before(async () => {
  pki = await makeTestPki({ serverName: NAME });
  port = await freePort();
  const tls = (host: string, status: number) => {
    const s = createHttpsServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
      seen.set(host, (req.socket as unknown as { servername: string }).servername);
      if (status === 503) res.writeHead(503, { [REFUSAL_HEADERS.reason]: "no_connection_point", "content-type": "application/json" }).end(JSON.stringify({ error: "no_connection_point", message: "no connection point is connected to this gateway" }));
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ served: host }));
    });
    servers.push(s);
    return listen(s, host);
  };
  await tls(SERVING, 200);
  await tls(DRAINING, 503);
  // Takes the connection and never answers the handshake (a host gone quiet).
  const silent = createTcpServer((sock) => (sockets.add(sock), sock.on("error", () => {})));
  servers.push(silent);
  await listen(silent, SILENT);
});

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** A client ID whose own order puts `first` first (found among fixed IDs: no randomness). */
function keyPreferring(first: string, addresses: string[]): string {
  for (let i = 0; i < 1000; i++) {
    const k = `GUID:${String(i).padStart(8, "0")}-0000-4000-8000-000000000000`;
    if (preferenceOrder(k, NAME, addresses)[0] === first) return k;
  }
  throw new Error(`no key prefers ${first}`);
}

async function callWith(addresses: string[], preferred: string, timeoutMs = 30_000): Promise<{ t: MpTransport; answer: { served: string }; moves: string[] }> {
  const moves: string[] = [];
  const t = new MpTransport({ ca: [pki.root.certPem] }, { timeoutMs, spread: { key: keyPreferring(preferred, addresses), resolver: staticResolver(new Map([[NAME, addresses]])) }, onFailover: (_h, a) => moves.push(a) });
  const answer = await t.call<{ served: string }>(`https://${NAME}:${port}`, "/x");
  return { t, answer, moves };
}

it("by IP, with the service name as TLS server name (the certificate does not name the address)", async () => {
  const { t, answer, moves } = await callWith([SERVING, DRAINING], SERVING);
  await t.close();
  assert.deepEqual(answer, { served: SERVING });
  assert.deepEqual(moves, []);
  assert.equal(seen.get(SERVING), NAME);
});

it("an instance that answers 503 (draining) is left for the next address, and tried last for the rest of the cycle", async () => {
  const { t, answer, moves } = await callWith([SERVING, DRAINING], DRAINING);
  assert.deepEqual(answer, { served: SERVING });
  assert.deepEqual(moves, [DRAINING]);
  assert.deepEqual(await t.addresses!.candidates(NAME), [SERVING, DRAINING]);
  await t.close();
});

it("a refused connection moves on to the next address", async () => {
  const { t, answer, moves } = await callWith([SERVING, CLOSED], CLOSED);
  await t.close();
  assert.deepEqual(answer, { served: SERVING });
  assert.deepEqual(moves, [CLOSED]);
});

it("an address that never completes the handshake moves on once the connect timeout passes", async () => {
  const { t, answer, moves } = await callWith([SERVING, SILENT], SILENT, 1000);
  await t.close();
  assert.deepEqual(answer, { served: SERVING });
  assert.deepEqual(moves, [SILENT]);
});

it("when every address fails, the last one's answer is the caller's", async () => {
  await assert.rejects(callWith([DRAINING, CLOSED], CLOSED), (e: unknown) => e instanceof GatewayRefusedError && e.status === 503 && e.reason === "no_connection_point");
});
