/**
 * Session tickets of one CMG open at any of its listeners (two real TLS servers stand for two
 * workers or instances), across a key rotation within the overlap, and not past it.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { DEFAULT_TICKET_PERIOD_MS, TicketKeys, ticketSecret } from "./tls-tickets.ts";

const P = DEFAULT_TICKET_PERIOD_MS;
let pki: TestPki;
const servers: http2.Http2SecureServer[] = [];

before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
});
after(() => {
  for (const s of servers) s.close();
});

/** A TLS listener like the client listener, its clock at `now()`; `keys` false: no shared keys. */
async function listener(now: () => number, cmg = "cmg1", keys = true): Promise<number> {
  const s = http2.createSecureServer({ cert: pki.server.certPem, key: pki.server.keyPem, allowHTTP1: true });
  if (keys) new TicketKeys(ticketSecret(pki.server.keyPem, cmg), P, now).install(s);
  s.on("request", (_q, r) => r.end("ok"));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

/** One TLS 1.3 connection with a request (so the ticket arrives): reused or not, and the ticket it got. */
function connect(port: number, session?: Buffer): Promise<{ reused: boolean; ticket: Buffer }> {
  return new Promise((resolve, reject) => {
    let reused = false;
    let ticket: Buffer | undefined;
    const s = tls.connect({ port, host: "127.0.0.1", servername: "cmg.contoso.test", ca: pki.root.certPem, ALPNProtocols: ["http/1.1"], ...(session ? { session } : {}) });
    s.on("session", (t: Buffer) => (ticket = t));
    s.once("secureConnect", () => {
      reused = s.isSessionReused();
      s.write("GET / HTTP/1.1\r\nHost: cmg.contoso.test\r\nConnection: close\r\n\r\n");
    });
    s.resume();
    s.once("error", reject);
    // A resumed session may get no new ticket: the one it came with stands.
    s.once("close", () => {
      const t = ticket ?? session;
      if (t) resolve({ reused, ticket: t });
      else reject(new Error("no session ticket"));
    });
  });
}

describe("TLS session tickets shared by the CMG's listeners", () => {
  it("a session from one listener resumes at another of the same CMG, not at another CMG's", async () => {
    const t0 = 1000 * P + 10;
    const a = await listener(() => t0);
    const b = await listener(() => t0);
    const other = await listener(() => t0, "cmg2");
    const first = await connect(a);
    assert.equal(first.reused, false);
    assert.equal((await connect(b, first.ticket)).reused, true);
    assert.equal((await connect(other, first.ticket)).reused, false);
  });

  it("after a rotation the previous period's tickets still resume (the overlap), two periods on they do not", async () => {
    let now = 2000 * P + 10;
    const a = await listener(() => now);
    const b = await listener(() => now);
    const first = await connect(a);
    now += P; // the next period: b issues under a new key, still opens the previous one
    const overlap = await connect(b, first.ticket);
    assert.equal(overlap.reused, true);
    // The renewed ticket (current key) lasts into the period after.
    now += P;
    assert.equal((await connect(a, overlap.ticket)).reused, true);
    assert.equal((await connect(b, first.ticket)).reused, false);
  });
});
