// Limits of the client listener, so one slow or oversized client cannot starve the others:
// header size, slow headers, idle connections, the connection cap, and a site that never answers.
import assert from "node:assert/strict";
import http2 from "node:http2";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, type CmgHarness } from "../../test/helpers/cmg-harness.ts";

describe("client listener limits", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({
      instances: 1,
      connectionPoints: 1,
      limits: { maxHeaderBytes: 4096, headersTimeoutMs: 1000, idleTimeoutMs: 1500, maxConnections: 4, upstreamResponseTimeoutMs: 1000 },
    });
    await h.waitReady();
  });
  after(() => h.close());

  const tlsOpts = () => ({ host: "127.0.0.1", port: h.ports[0]!.client, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });

  /** Resolves with what the server sent once it closed the connection (guarded: never hangs the suite). */
  function closedBy(socket: tls.TLSSocket, guardMs = 20_000): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = "";
      const guard = setTimeout(() => {
        socket.destroy();
        reject(new Error("the server kept the connection open"));
      }, guardMs);
      socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(guard);
        resolve(got);
      });
    });
  }

  it("answers 431 to HTTP/1.1 headers over the size limit", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client, headers: { "x-big": "a".repeat(8000) } }).catch((e: Error) => e);
    if (r instanceof Error) assert.match(r.message, /socket hang up|ECONNRESET/);
    else assert.equal(r.status, 431);
  });

  it("closes an HTTP/1.1 connection whose headers do not arrive in time", async () => {
    const socket = tls.connect({ ...tlsOpts(), ALPNProtocols: ["http/1.1"] });
    await new Promise<void>((r) => socket.once("secureConnect", () => r()));
    socket.write(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/x HTTP/1.1\r\nHost: cmg.opencmg.test\r\nX-Slow: `);
    const sent = await closedBy(socket);
    assert.ok(sent === "" || /^HTTP\/1\.1 408/.test(sent), sent);
  });

  it("closes an idle HTTP/2 connection", async () => {
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, tlsOpts());
    session.on("error", () => {});
    const st = session.request({ ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/x` });
    st.resume();
    await new Promise((r) => st.on("close", r));
    await new Promise<void>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error("the idle session stayed open")), 20_000);
      session.on("close", () => {
        clearTimeout(guard);
        resolve();
      });
    });
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
    const status = await new Promise((r) => st.on("response", (hd) => r(hd[":status"])));
    st.resume();
    assert.equal(status, 200);
    for (const s of sessions) s.destroy();
    // The next test needs a free slot: wait until the instance has seen them all go.
    for (let k = 0; k < 500; k++) {
      const g = await h.instances[0]!.metrics.clientConnections.get();
      if ((g.values[0]?.value ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it("answers 504 when the site does not answer in time, and cancels the request on-premises", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/never`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body.toString()).error, "upstream_timeout");
    h.backend.release("never");
  });
});
