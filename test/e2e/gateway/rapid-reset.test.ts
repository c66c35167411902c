// HTTP/2 rapid reset (CVE-2023-44487) and stream floods against a role answering 1 MiB, with real
// sockets: the attacker writes raw frames, so every HEADERS really reaches the gateway with its
// RST_STREAM. The gateway must cut it off with GOAWAY ENHANCE_YOUR_CALM, cancel what it relayed,
// release its counters, and keep serving normal clients.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../helpers/cmg-harness.ts";
import { rawH2, type RawH2 } from "../../helpers/h2-raw.ts";

const ENHANCE_YOUR_CALM = 11;
const LIMITS = { maxCancelledStreamsPerConnection: 50, maxCancelledStreamsPerClient: 80, abuseWindowMs: 60_000 };

/** Bytes requests the backend started. */
const started = (h: CmgHarness): number => h.backend.requests.filter((r) => r.url.includes("/bytes/")).length;
const inFlight = (h: CmgHarness): number => h.instances[0]!.status().tunnels.reduce((n, t) => n + t.inFlight, 0);

async function metric(h: CmgHarness, name: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${h.instances[0]!.metricsPort}/metrics`);
  const text = await res.text();
  return text.split("\n").filter((l) => l.startsWith(name)).join("\n");
}

/**
 * Opens and cancels streams in batches until the gateway closes the connection or `maxStreams`
 * went out (bounded: a gateway that never reacts fails the test instead of looping forever).
 * `late`: the RST_STREAMs follow their HEADERS in a later write, once the gateway may have
 * relayed them.
 */
async function attack(c: RawH2, path: string, maxStreams: number, late: boolean): Promise<number> {
  let sent = 0;
  // A GOAWAY ends it, as it would for any client that reads what the server says.
  while (!c.closed && c.goaway === undefined && sent < maxStreams) {
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push(late ? c.headers(path) : c.openAndCancel(path));
    c.flush();
    sent += ids.length;
    if (late) {
      await new Promise((r) => setTimeout(r, 5));
      for (const id of ids) c.rst(id);
      c.flush();
    }
    await new Promise((r) => setImmediate(r));
  }
  return sent;
}

describe("HTTP/2 rapid reset against a 1 MiB role", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, connectionsPerInstance: 1, limits: LIMITS });
    await h.waitReady();
  });
  after(() => h.close());

  const path = () => `/CCM_Proxy_MutualAuth/${h.roles.mp}/bytes/${1024 * 1024}`;

  for (const late of [false, true]) {
    it(`answers GOAWAY ENHANCE_YOUR_CALM and releases everything (RST_STREAM ${late ? "after" : "with"} the HEADERS)`, async () => {
      const before = started(h);
      // A certificate of its own: the identity's counters from other tests stay out of this one.
      const cert = await h.issueClient({ commonName: `attacker-${late ? "late" : "at-once"}` });
      const c = await rawH2({ port: h.ports[0]!.client, ca: h.pki.root.certPem, cert });
      const sent = await attack(c, path(), 5000, late);
      await until("the gateway to close the connection", () => c.closed);
      assert.equal(c.goaway, ENHANCE_YOUR_CALM, `GOAWAY code after ${sent} streams`);
      assert.ok(sent < 5000, `cut off after ${sent} streams`);
      await until("the tunnel's in-flight count back to 0", () => inFlight(h) === 0);
      // Every relayed request was cancelled on-premises: the backend started at most about the
      // threshold's worth (plus the batch in flight), never the thousands the attacker sent.
      const seen = started(h) - before;
      assert.ok(seen <= LIMITS.maxCancelledStreamsPerConnection + 20, `the backend started ${seen} of ${sent} cancelled requests`);
      await until("the backend's responses to be over (cancelled or done)", () => h.backend.open === 0);
      const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
      assert.ok(
        log.some((l) => /streams cancelled before an answer .* on one connection \(limit 50\).*GOAWAY ENHANCE_YOUR_CALM/.test(l) && l.includes(cert.thumbprint)),
        log.slice(-5).join("\n"),
      );
      assert.match(await metric(h, "opencmg_gateway_client_abuse_total"), /rule="cancelled_streams",scope="connection"[^\n]* [1-9]/);
      // A normal client is served as before.
      const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client, h2: true });
      assert.equal(r.status, 200);
    });
  }

  it("cuts off every connection of one client identity that stays under the per-connection limit on each", async () => {
    const cert = await h.issueClient({ commonName: "attacker-many" });
    const conns = await Promise.all([0, 1, 2].map(() => rawH2({ port: h.ports[0]!.client, ca: h.pki.root.certPem, cert })));
    // 3 x 40 cancelled streams: under 50 per connection, over 80 for the identity.
    for (let i = 0; i < 40; i++) for (const c of conns) if (!c.closed) c.openAndCancel(path());
    for (const c of conns) c.flush();
    await until("the gateway to close all three connections", () => conns.every((c) => c.closed));
    // Each of them was cut off by the identity rule (GOAWAY ENHANCE_YOUR_CALM), not just closed.
    assert.deepEqual(conns.map((c) => c.goaway), [ENHANCE_YOUR_CALM, ENHANCE_YOUR_CALM, ENHANCE_YOUR_CALM]);
    assert.match(await metric(h, "opencmg_gateway_client_abuse_total"), /rule="cancelled_streams",scope="client"[^\n]* [1-9]/);
    await until("the tunnel's in-flight count back to 0", () => inFlight(h) === 0);
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client });
    assert.equal(r.status, 200);
  });
});
