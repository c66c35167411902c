/**
 * A device comes back to a restarted CMG instance with its TLS session: the session outlives a
 * garbage collection (undici's own cache holds it weakly) and resumes at the new listener, which
 * shares the CMG's ticket keys.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { after, before, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Agent, request, type buildConnector } from "undici";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { DEFAULT_TICKET_PERIOD_MS, TicketKeys, ticketSecret } from "../gateway/tls-tickets.ts";
import { TlsSessions } from "./tls-sessions.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const NAME = "cmg.contoso.test";
let pki: TestPki;
const servers: http2.Http2SecureServer[] = [];
before(async () => {
  pki = await makeTestPki({ serverName: NAME });
});
after(() => {
  for (const s of servers) s.close();
});

/** An instance's client listener: the CMG's ticket keys; records whether each connection resumed. */
async function instance(resumed: boolean[]): Promise<{ port: number; stop(): void }> {
  const s = http2.createSecureServer({ cert: pki.server.certPem, key: pki.server.keyPem, allowHTTP1: true });
  new TicketKeys(ticketSecret(pki.server.keyPem, "cmg1"), DEFAULT_TICKET_PERIOD_MS).install(s);
  s.on("secureConnection", (t: TLSSocket) => resumed.push(t.isSessionReused()));
  s.on("request", (_q, r) => r.end("ok"));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    port: (s.address() as AddressInfo).port,
    stop: () => {
      s.close();
      (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    },
  };
}

it("a session outlives garbage collection and resumes at a restarted instance", async () => {
  const sessions = new TlsSessions();
  const agent = new Agent({ connect: sessions.connector({ ca: pki.root.certPem, servername: NAME }), keepAliveTimeout: 10_000 });
  try {
    const seen: boolean[] = [];
    const first = await instance(seen);
    const r1 = await request(`https://127.0.0.1:${first.port}/`, { dispatcher: agent });
    assert.equal(await r1.body.text(), "ok");
    assert.ok(sessions.get(NAME), "the first connection's session is kept");
    first.stop();
    await agent.close();

    gc();
    await new Promise((r) => setImmediate(r));
    gc();

    const again = new Agent({ connect: sessions.connector({ ca: pki.root.certPem, servername: NAME }), keepAliveTimeout: 10_000 });
    const restarted = await instance(seen);
    const r2 = await request(`https://127.0.0.1:${restarted.port}/`, { dispatcher: again });
    assert.equal(await r2.body.text(), "ok");
    await again.close();
    assert.deepEqual(seen, [false, true], "full handshake first, then resumed at the restarted instance");
  } finally {
    await agent.destroy().catch(() => {});
  }
});

it("names the server's certificate on a resumed connection too (a resumed handshake carries none)", async () => {
  const sessions = new TlsSessions();
  const options = { ca: pki.root.certPem, servername: NAME };
  const base = sessions.connector(options);
  const presented: string[] = [];
  const connect: buildConnector.connector = (opts, cb) =>
    base(opts, (err, socket) => {
      if (socket) presented.push(sessions.presented(TlsSessions.nameOf(opts, options), socket as TLSSocket)?.fingerprint256 ?? "none");
      (cb as (e: Error | null, s: typeof socket) => void)(err, socket);
    });
  const seen: boolean[] = [];
  for (let i = 0; i < 2; i++) {
    const agent = new Agent({ connect, keepAliveTimeout: 10_000 });
    const one = await instance(seen);
    const r = await request(`https://127.0.0.1:${one.port}/`, { dispatcher: agent });
    assert.equal(await r.body.text(), "ok");
    await agent.close();
    one.stop();
  }
  assert.deepEqual(seen, [false, true], "the second connection resumed");
  assert.notEqual(presented[0], "none");
  assert.deepEqual(presented, [presented[0], presented[0]], "the resumed connection names the certificate the first one was given");
});
