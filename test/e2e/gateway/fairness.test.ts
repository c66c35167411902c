// Fair shares under attack, with real TLS, HTTP/1.1 and HTTP/2 sockets against a gateway instance,
// a connection point and a backend: one client identity (or one source address) cannot take the
// requests in progress or the upload bandwidth the others need by opening more connections, and an
// identity cut off for stream abuse gets nothing relayed when it comes back on a new connection.
// Nothing here is timed: each check waits for the event the mechanism causes (bounded), and the
// upload rates are so low that only the burst can pass while the test runs.
import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness, type HttpResult } from "../../helpers/cmg-harness.ts";
import { rawH2 } from "../../helpers/h2-raw.ts";
import type { CertKeyPem } from "../../../src/pki/issue.ts";

const KiB = 1024;
const ENHANCE_YOUR_CALM = 11;
/** Another loopback source address than the harness's clients (127.0.0.1). */
const OTHER_ADDRESS = "127.0.0.2";

/** An HTTP/1.1 request on a fresh connection, from `localAddress` when given. */
function request(h: CmgHarness, path: string, o: { cert: CertKeyPem; method?: string; body?: Buffer; localAddress?: string }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port: h.ports[0]!.client,
      path,
      method: o.method ?? "GET",
      ca: h.pki.root.certPem,
      cert: o.cert.certPem,
      key: o.cert.keyPem,
      servername: "cmg.opencmg.test",
      agent: false,
      ...({ ALPNProtocols: ["http/1.1"] } as object),
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    // Only a broken gateway ever waits this long (e.g. one that relays what it should refuse).
    req.setTimeout(30_000, () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), protocol: "http/1.1" }));
    });
    req.end(o.body);
  });
}

/** An HTTP/2 connection of `cert`. */
function h2(h: CmgHarness, cert: CertKeyPem): http2.ClientHttp2Session {
  const s = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, cert: cert.certPem, key: cert.keyPem, servername: "cmg.opencmg.test" });
  s.on("error", () => {});
  return s;
}

/** A request the backend holds until released: resolves with its status once answered. */
function held(s: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const st = s.request({ ":path": path });
    st.on("response", (hd) => {
      st.resume();
      st.on("end", () => resolve(Number(hd[":status"])));
    });
    st.on("error", reject);
  });
}

/** A device certificate issued as the harness's client's is (same CA, same CRL), for an identity of its own. */
function device(h: CmgHarness, commonName: string): Promise<CertKeyPem & { thumbprint: string }> {
  return h.issueClient({ commonName, ...(h.pki.crlUrls.intermediate ? { crlUrl: h.pki.crlUrls.intermediate } : {}) });
}

/** True once the backend holds a request for each key (a bounded wait with `until`, unlike backend.held). */
function arrived(h: CmgHarness, keys: string[]): boolean {
  return keys.every((k) => h.backend.requests.some((r) => r.url.endsWith(`/hold/${k}`)));
}

async function metric(h: CmgHarness, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${h.instances[0]!.metricsPort}/metrics`)).text();
  const m = text.split("\n").find((l) => line.test(l));
  return m ? Number(m.split(" ").pop()) : 0;
}

describe("fair share of requests in progress", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { maxRequestsPerClientIdentity: 2, maxRequestsPerAddress: 4 } });
    await h.waitReady();
  });
  after(() => h.close());

  const path = (p: string): string => `/CCM_Proxy_MutualAuth/${h.roles.mp}${p}`;
  const relayed = (p: string): boolean => h.backend.requests.some((r) => r.url.endsWith(p));

  it("an identity over its quota across connections gets 429 client_busy, nothing relayed, while another identity is served", async () => {
    const a = await device(h, "PC-BUSY-A");
    const b = await device(h, "PC-BUSY-B");
    // Two connections of A, one request in progress on each: under the per-connection stream cap
    // on both, at the identity's quota over the two.
    const conns = [h2(h, a), h2(h, a)];
    const answers = [held(conns[0]!, path("/hold/quota-a1")), held(conns[1]!, path("/hold/quota-a2"))];
    await until("both requests of A held on-premises", () => arrived(h, ["quota-a1", "quota-a2"]));
    try {
      // A third request of A, on a third connection (HTTP/1.1).
      const r = await request(h, path("/hold/quota-a3"), { cert: a });
      assert.equal(r.status, 429);
      assert.equal(r.headers["x-opencmg-reason"], "client_busy");
      assert.ok(r.headers["retry-after"], "Retry-After");
      assert.equal(JSON.parse(r.body.toString()).error, "client_busy");
      assert.ok(!relayed("/hold/quota-a3"), "the refused request went on-premises");
      // Another identity from the same address is served meanwhile.
      const other = await request(h, path("/echo/quota-b"), { cert: b });
      assert.equal(other.status, 200);
      assert.ok((await metric(h, /^opencmg_gateway_fair_share_total\{[^}]*kind="busy"[^}]*scope="client"/)) >= 1);
    } finally {
      h.backend.release("quota-a1");
      h.backend.release("quota-a2");
    }
    assert.deepEqual(await Promise.all(answers), [200, 200]);
    // Once its requests are over, A is served again (its share is given back).
    await until("A to be served again", async () => (await request(h, path("/echo/quota-a4"), { cert: a })).status === 200);
    for (const c of conns) c.close();
  });

  it("a source address over its quota gets 429 address_busy, while another address is served", async () => {
    const ids = await Promise.all([1, 2, 3, 4, 5].map((i) => device(h, `PC-ADDR-${i}`)));
    // Four identities behind 127.0.0.1 (one request each: under their own quota), the address's four.
    const conns = ids.slice(0, 4).map((c) => h2(h, c));
    const answers = conns.map((c, i) => held(c, path(`/hold/addr-${i}`)));
    await until("the four requests held on-premises", () => arrived(h, [0, 1, 2, 3].map((i) => `addr-${i}`)));
    try {
      const r = await request(h, path("/hold/addr-over"), { cert: ids[4]! });
      assert.equal(r.status, 429);
      assert.equal(r.headers["x-opencmg-reason"], "address_busy");
      assert.ok(!relayed("/hold/addr-over"), "the refused request went on-premises");
      // The same identity from another address is served.
      const other = await request(h, path("/echo/addr-other"), { cert: ids[4]!, localAddress: OTHER_ADDRESS });
      assert.equal(other.status, 200);
    } finally {
      for (let i = 0; i < 4; i++) h.backend.release(`addr-${i}`);
    }
    assert.deepEqual(await Promise.all(answers), [200, 200, 200, 200]);
    for (const c of conns) c.close();
  });
});

// The upload share: a bucket whose burst passes at full speed and whose rate (1 KiB/s) is so low
// that nothing more can pass while the test runs. One scope per case, the other turned off.
for (const scope of ["client", "address"] as const) {
  describe(`upload share per ${scope === "client" ? "client identity" : "source address"}`, () => {
    let h: CmgHarness;
    const burst = 256 * KiB;
    before(async () => {
      const limits =
        scope === "client"
          ? { uploadBytesPerSecondPerClient: 1024, uploadBurstBytesPerClient: burst, uploadBytesPerSecondPerAddress: 0 }
          : { uploadBytesPerSecondPerClient: 0, uploadBytesPerSecondPerAddress: 1024, uploadBurstBytesPerAddress: burst };
      h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits });
      await h.waitReady();
    });
    after(() => h.close());

    it(`an uploader's bytes stop at its ${scope}'s burst while another ${scope} uploads in full`, async () => {
      const path = (p: string): string => `/CCM_Proxy_MutualAuth/${h.roles.mp}${p}`;
      const a = await device(h, `PC-UP-A-${scope}`);
      const b = await device(h, `PC-UP-B-${scope}`);
      // A sends 32 MiB on HTTP/2 as fast as flow control lets it (under the 64 MiB body limit).
      const s = h2(h, a);
      const up = s.request({ ":method": "POST", ":path": path(`/echo/upload-a-${scope}`), "content-type": "application/octet-stream" });
      up.on("error", () => {});
      const chunk = Buffer.alloc(64 * KiB, 0x61);
      let written = 0;
      void (async () => {
        while (written < 32 * 1024 * KiB && !up.destroyed) {
          written += chunk.length;
          if (!up.write(chunk))
            await new Promise<void>((r) => {
              const go = (): void => (up.off("drain", go), up.off("close", go), r());
              up.on("drain", go);
              up.on("close", go);
            });
        }
        if (!up.destroyed) up.end();
      })();
      const recordA = await until("A's upload to reach the backend", () => h.backend.requests.find((r) => r.url.endsWith(`/echo/upload-a-${scope}`)));
      await until("A's burst to pass", () => recordA.bodyBytes >= burst / 2);
      try {
        // B (another identity; for the address scope, from another address) uploads in full.
        const bBody = Buffer.alloc(128 * KiB, 0x62);
        const r = await request(h, path(`/echo/upload-b-${scope}`), { cert: b, method: "POST", body: bBody, ...(scope === "address" ? { localAddress: OTHER_ADDRESS } : {}) });
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).bodyBytes, bBody.length);
        // A was paused over its share (or, without one, its whole body went through).
        const pausedLine = new RegExp(`^opencmg_gateway_fair_share_total\\{[^}]*kind="upload_paused"[^}]*scope="${scope}"`);
        await until("A to be paused or done", async () => recordA.complete || (await metric(h, pausedLine)) > 0);
        assert.ok(!recordA.complete, `A's whole upload (${written} bytes) went through`);
        // The burst, the chunk that overdrew it, and 1 KiB per second since: far below what A sent.
        assert.ok(recordA.bodyBytes < burst + 64 * KiB + 512 * KiB, `the backend got ${recordA.bodyBytes} bytes of A's upload`);
        const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
        assert.ok(log.some((l) => l.includes(`thumbprint ${a.thumbprint}`) && l.includes("upload paused")), log.slice(-5).join("\n"));
        assert.ok(!log.some((l) => l.includes(`thumbprint ${b.thumbprint}`) && l.includes("upload paused")), "B was paused");
      } finally {
        s.destroy();
      }
    });
  });
}

describe("an identity cut off for stream abuse", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { maxCancelledStreamsPerConnection: 50, maxCancelledStreamsPerClient: 80, abuseWindowMs: 600_000 } });
    await h.waitReady();
  });
  after(() => h.close());

  it("gets GOAWAY ENHANCE_YOUR_CALM on its next connection at once, with nothing relayed, while another identity is served", async () => {
    const path = (p: string): string => `/CCM_Proxy_MutualAuth/${h.roles.mp}${p}`;
    const x = await device(h, "PC-RESET-X");
    const y = await device(h, "PC-RESET-Y");
    // 3 x 40 cancelled streams: under 50 per connection, over 80 for the identity.
    const conns = await Promise.all([0, 1, 2].map(() => rawH2({ port: h.ports[0]!.client, ca: h.pki.root.certPem, cert: x })));
    for (let i = 0; i < 40; i++) for (const c of conns) if (!c.closed) c.openAndCancel(path(`/bytes/${1024 * 1024}`));
    for (const c of conns) c.flush();
    await until("the gateway to close the identity's connections", () => conns.every((c) => c.closed));
    // X comes back on a new connection with one plain request.
    const again = await rawH2({ port: h.ports[0]!.client, ca: h.pki.root.certPem, cert: x });
    const id = again.headers(path("/echo/after-cut-off"));
    again.flush();
    await until("the gateway to close the new connection", () => again.closed);
    assert.equal(again.goaway, ENHANCE_YOUR_CALM);
    assert.ok(!again.answered.has(id), "the new connection's request was answered");
    assert.ok(!h.backend.requests.some((r) => r.url.endsWith("/echo/after-cut-off")), "the new connection's request went on-premises");
    const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
    assert.ok(log.some((l) => l.includes(`thumbprint ${x.thumbprint}`) && l.includes("new connection got GOAWAY ENHANCE_YOUR_CALM at once")), log.slice(-5).join("\n"));
    // Another identity is served.
    const r = await h.request(0, path("/echo/other"), { cert: y, h2: true });
    assert.equal(r.status, 200);
  });
});

describe("an address that floods the tunnel port with idle connections", () => {
  let h: CmgHarness;
  before(async () => {
    // A handshake timeout longer than the test: nothing is closed for being slow here.
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { handshakeTimeoutMs: 600_000, handshakeGraceMs: 600_000, maxPendingTunnelsPerAddress: 4, maxWaitingTunnelsPerAddress: 64 } });
    await h.waitReady();
  });
  after(() => h.close());

  it("waits for its own places (nothing closed, nothing handed to TLS) while a connection point from another address gets its tunnel", async () => {
    const name = "cp1.opencmg.test";
    const flood: net.Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 40; i++) {
      const s = await new Promise<net.Socket>((resolve, reject) => {
        const c = net.connect({ port: h.ports[0]!.tunnel, host: "127.0.0.1", localAddress: OTHER_ADDRESS });
        c.once("connect", () => resolve(c));
        c.once("error", reject);
      });
      s.on("error", () => {});
      s.once("close", () => closed++);
      flood.push(s);
    }
    try {
      // The connection point (127.0.0.1) comes back while the 40 connections are held.
      await h.killConnectionPoint(0);
      await until("the instance to see the connection point gone", () => (h.instances[0]!.status().connectionPoints[name] ?? 0) === 0);
      await h.startConnectionPoint(0);
      await until("the connection point's tunnel again", () => (h.instances[0]!.status().connectionPoints[name] ?? 0) > 0);
      // 4 hold handshake places, 36 wait for theirs: none was closed to make room (before, the
      // address's oldest handshake was closed for each new connection over its 4).
      assert.equal(closed, 0, `${closed} of the flood's connections were closed`);
    } finally {
      for (const s of flood) s.destroy();
    }
    // Those that held places end as failed handshakes, and the waiting ones follow them through the
    // gate: waited for, so nothing is left to log after the test.
    await until("the flood's handshakes and waiting connections to be over", () => {
      const t = h.instances[0]!.status().handshakes.tunnel;
      return t.pending === 0 && t.waiting === 0;
    });
  });
});
