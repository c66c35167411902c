// Limits of the client listener, so one slow or oversized client cannot starve the others:
// header size, slow headers, idle connections, the connection cap, and a site that never answers.
import assert from "node:assert/strict";
import http2 from "node:http2";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, type CmgHarness } from "../../test/helpers/cmg-harness.ts";

/**
 * Resolves once `emitter` has emitted `event`, listening from the moment it is called (an event
 * that comes first is never missed); rejects after `guardMs`, so a broken gateway fails the test
 * instead of hanging the suite. The bound is generous: only a failure ever waits for it.
 */
function once(emitter: { once(event: string, fn: () => void): unknown }, event: string, what: string, guardMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(what)), guardMs);
    emitter.once(event, () => {
      clearTimeout(guard);
      resolve();
    });
  });
}

// Sizes and caps, with the default timeouts: nothing here may depend on how fast the machine is.
describe("client listener limits: sizes and connections", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { maxHeaderBytes: 4096, maxConnections: 4 } });
    await h.waitReady();
  });
  after(() => h.close());

  const tlsOpts = () => ({ host: "127.0.0.1", port: h.ports[0]!.client, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });

  it("answers 431 to HTTP/1.1 headers over the size limit", async () => {
    const seen = h.backend.requests.length;
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/big-headers`, { cert: h.pki.client, headers: { "x-big": "a".repeat(8000) } });
    assert.equal(r.status, 431);
    assert.equal(h.backend.requests.length, seen, "never relayed");
  });

  it("refuses connections over the cap while serving the ones it holds", async () => {
    const sessions = Array.from({ length: 4 }, () => {
      const s = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, tlsOpts());
      s.on("error", () => {});
      return s;
    });
    await Promise.all(sessions.map((s) => new Promise((r) => s.once("connect", r))));
    const extra = tls.connect({ ...tlsOpts(), ALPNProtocols: ["h2"] });
    const outcome = await new Promise<string>((resolve) => {
      extra.once("secureConnect", () => resolve("connected"));
      extra.once("error", (e) => resolve(`error: ${e.message}`));
      extra.once("close", () => resolve("closed"));
    });
    extra.destroy();
    assert.notEqual(outcome, "connected");
    const st = sessions[0]!.request({ ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/x` });
    const status = await new Promise((resolve, reject) => {
      st.on("response", (hd) => resolve(hd[":status"]));
      st.on("error", reject);
      st.on("close", () => reject(new Error(`the stream closed without a response (code ${st.rstCode})`)));
    });
    st.resume();
    assert.equal(status, 200);
    for (const s of sessions) s.destroy();
  });
});

// Timeouts, short so the tests are quick; each test waits for the event its limit causes. The
// idle timeout is well above the others, so that a slow machine cannot make it close a connection
// before the limit under test fires.
describe("client listener limits: timeouts", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({
      instances: 1,
      connectionPoints: 1,
      limits: { headersTimeoutMs: 1000, idleTimeoutMs: 3000, upstreamResponseTimeoutMs: 500 },
    });
    await h.waitReady();
  });
  after(() => h.close());

  const tlsOpts = () => ({ host: "127.0.0.1", port: h.ports[0]!.client, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });

  /** Resolves with what the server sent once it closed the connection (guarded: never hangs the suite). */
  function closedBy(socket: tls.TLSSocket, guardMs = 30_000): Promise<string> {
    let got = "";
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("error", () => {});
    return once(socket, "close", "the server kept the connection open", guardMs).then(() => got);
  }

  it("closes an HTTP/1.1 connection whose headers do not arrive in time", async () => {
    const socket = tls.connect({ ...tlsOpts(), ALPNProtocols: ["http/1.1"] });
    await new Promise<void>((r) => socket.once("secureConnect", () => r()));
    socket.write(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/x HTTP/1.1\r\nHost: cmg.opencmg.test\r\nX-Slow: `);
    const sent = await closedBy(socket);
    // Node answers 408 when the header timeout fires; an idle close or a drop would send nothing.
    assert.match(sent, /^HTTP\/1\.1 408 /);
  });

  it("closes an idle HTTP/2 connection", async () => {
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, tlsOpts());
    session.on("error", () => {});
    // Listening from the start: on a slow machine the session may be idle long enough to close
    // while the request is still on its way.
    const closed = once(session, "close", "the idle session stayed open");
    const st = session.request({ ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/x` });
    st.on("error", () => {});
    st.resume();
    await closed;
  });

  it("answers 504 when the site does not answer in time, and cancels the request on-premises", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/never`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body.toString()).error, "upstream_timeout");
    h.backend.release("never");
  });
});
