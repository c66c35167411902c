// The internet edge: what a stranger who reaches the client or tunnel port can hold, and what
// never goes on-premises. Timeouts are short here so the tests are quick; every wait is for the
// event the limit causes, with a generous bound (only a broken gateway ever waits for it).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../test/helpers/cmg-harness.ts";
import { forgeClientCert } from "../../test/helpers/pki-fixtures.ts";
import { samples } from "../../test/helpers/prometheus.ts";

/** Resolves with what the server sent once it closed the connection; rejects after `guardMs`. */
function closedByServer(socket: net.Socket, guardMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("error", () => {});
    const guard = setTimeout(() => reject(new Error("the server kept the connection open")), guardMs);
    socket.once("close", () => {
      clearTimeout(guard);
      resolve(got);
    });
  });
}

/** Failed TLS handshakes instance 0 counted on `listener` (a timed-out handshake is one; a silent connection dropped without one is not). */
async function handshakeFailures(h: CmgHarness, listener: "client" | "tunnel"): Promise<number> {
  const text = await h.instances[0]!.metrics.registry.getSingleMetricAsString("opencmg_gateway_tls_handshake_failures_total");
  return samples(text)
    .filter((x) => x.name === "opencmg_gateway_tls_handshake_failures_total" && x.labels.listener === listener)
    .reduce((n, x) => n + x.value, 0);
}

/** Connections instance 0's handshake gate closed on `listener` (any reason). */
async function gateClosed(h: CmgHarness, listener: "client" | "tunnel"): Promise<number> {
  const text = await h.instances[0]!.metrics.registry.getSingleMetricAsString("opencmg_gateway_handshake_gate_closed_total");
  return samples(text)
    .filter((x) => x.name === "opencmg_gateway_handshake_gate_closed_total" && x.labels.listener === listener)
    .reduce((n, x) => n + x.value, 0);
}

function tcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

describe("tunnel port flood: idle TCP connections that never start TLS", () => {
  let h: CmgHarness;
  before(async () => {
    // A handshake timeout longer than the test: the flood is held for all of it.
    // At most 100 connections of an address wait for its 16 handshake places; the rest are closed.
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { handshakeTimeoutMs: 600_000, maxWaitingTunnelsPerAddress: 100 } });
    await h.waitReady();
  });
  after(() => h.close());

  it("a restarted connection point gets its tunnels back while 300 idle connections knock", async () => {
    const name = "cp1.opencmg.test";
    await h.killConnectionPoint(0);
    await until("the instance to see the connection point gone", () => (h.instances[0]!.status().connectionPoints[name] ?? 0) === 0, 60_000);
    const flood: net.Socket[] = [];
    let closedFlood = 0;
    for (let i = 0; i < 300; i++) {
      const s = await tcp(h.ports[0]!.tunnel).catch(() => null);
      if (!s) continue;
      s.on("error", () => {});
      s.once("close", () => closedFlood++);
      flood.push(s);
    }
    try {
      await h.startConnectionPoint(0);
      await until("the restarted connection point's tunnels", () => (h.instances[0]!.status().connectionPoints[name] ?? 0) >= 2, 60_000);
      const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client });
      assert.equal(r.status, 200);
      // Only a few places are held by the flood (the per-address cap) and a bounded number wait
      // for them (paused, before any TLS work); the rest were closed.
      await until("the flood to be cut down to the per-address cap and waiting cap", () => flood.length - closedFlood <= 16 + 100, 60_000);
      assert.ok(h.logLines("gw0", "CMGService.log").some((l) => /unfinished TLS handshakes closed to make room/.test(l.text)));
      // Every connection the gate closed is counted (before its peer can see the close), with why.
      const seen = closedFlood;
      assert.ok(seen > 0 && (await gateClosed(h, "tunnel")) >= seen, `gate closures counted: ${await gateClosed(h, "tunnel")}, flood connections closed: ${seen}`);
    } finally {
      for (const s of flood) s.destroy();
    }
    // The waiting ones go through the gate as places free up, and fail there: nothing is left to log after the test.
    await until("the flood's handshakes and waiting connections to be over", () => {
      const t = h.instances[0]!.status().handshakes.tunnel;
      return t.pending === 0 && t.waiting === 0;
    });
  });
});

describe("slow handshakes and slow headers (slowloris)", () => {
  let h: CmgHarness;
  before(async () => {
    // The idle timeout is far above the others: a closure can only come from the limit under test.
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { handshakeTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 600_000 } });
    await h.waitReady();
  });
  after(() => h.close());

  for (const listener of ["client", "tunnel"] as const) {
    it(`the ${listener} listener closes a connection that never starts TLS at its handshake timeout`, async () => {
      const failed = await handshakeFailures(h, listener);
      const s = await tcp(h.ports[0]![listener]);
      assert.equal(await closedByServer(s), "");
      assert.equal(await handshakeFailures(h, listener), failed + 1, "closed as a failed handshake, not dropped on arrival");
    });

    it(`the ${listener} listener closes a connection whose TLS hello never completes`, async () => {
      const s = await tcp(h.ports[0]![listener]);
      // The first bytes of a TLS record header (handshake, TLS 1.0 record version), then nothing.
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x02]));
      const trickle = setInterval(() => s.writable && s.write(Buffer.from([0x00])), 200);
      try {
        await closedByServer(s);
      } finally {
        clearInterval(trickle);
      }
    });
  }

  it("the client listener closes an HTTP/1.1 connection whose headers trickle in, at the header timeout", async () => {
    const s = tls.connect({ host: "127.0.0.1", port: h.ports[0]!.client, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", ALPNProtocols: ["http/1.1"] });
    await new Promise<void>((r) => s.once("secureConnect", () => r()));
    s.write(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/x HTTP/1.1\r\nHost: cmg.opencmg.test\r\nX-Slow: `);
    const trickle = setInterval(() => s.writable && s.write("a"), 200);
    try {
      const sent = await closedByServer(s);
      // Node answers 408 when the header timeout fires; an idle close or a drop would send nothing.
      assert.match(sent, /^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });
});

describe("request lines that are never relayed", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1 });
    await h.waitReady();
  });
  after(() => h.close());

  /** Sends `raw` on an HTTP/1.1 connection with the client certificate; resolves with the answer once the server closes. */
  async function send(raw: string): Promise<string> {
    const s = tls.connect({ host: "127.0.0.1", port: h.ports[0]!.client, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem, ALPNProtocols: ["http/1.1"] });
    await new Promise<void>((r) => s.once("secureConnect", () => r()));
    const closed = closedByServer(s);
    s.write(raw);
    return closed;
  }

  it("answers 400 to an HTTP/1.1 request without Host", async () => {
    const seen = h.backend.requests.length;
    const answer = await send(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/nohost HTTP/1.1\r\nConnection: close\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal(h.backend.requests.length, seen, "never relayed");
  });

  it("refuses an HTTP/0.9 request line and an unknown HTTP version", async () => {
    const seen = h.backend.requests.length;
    for (const [key, raw] of [
      ["http09", `GET /CCM_Proxy_MutualAuth/${h.roles.mp}/http09\r\n\r\n`],
      ["http20", `GET /CCM_Proxy_MutualAuth/${h.roles.mp}/http20 HTTP/2.0\r\nHost: cmg.opencmg.test\r\n\r\n`],
    ] as const) {
      const answer = await send(raw);
      assert.match(answer, /^HTTP\/1\.1 505 /, raw);
      assert.match(answer, /\r\n\r\n\{"error":"http_version",/, raw);
      const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
      assert.ok(log.some((l) => l.includes(`/${key} `) && /505 http_version/.test(l)), log.slice(-3).join("\n"));
    }
    assert.equal(h.backend.requests.length, seen, "never relayed");
  });

  it("still relays HTTP/1.0 without Host and HTTP/1.1 with it", async () => {
    assert.match(await send(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/x HTTP/1.0\r\n\r\n`), /^HTTP\/1\.1 200 /);
    assert.match(await send(`GET /CCM_Proxy_MutualAuth/${h.roles.mp}/x HTTP/1.1\r\nHost: cmg.opencmg.test\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);
  });
});

describe("TLS policy and client certificate policy at the client listener", () => {
  let h: CmgHarness;
  let dir: string;
  before(async () => {
    // No CRL check: the certificates made here name no CRL.
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, crlCheck: false });
    await h.waitReady();
    dir = mkdtempSync(join(tmpdir(), "opencmg-edge-"));
    writeFileSync(join(dir, "ca.pem"), h.pki.root.certPem);
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `openssl s_client` against a listener; resolves with whether the handshake completed, and the output. */
  function sClient(port: number, args: string[]): Promise<{ ok: boolean; out: string }> {
    return new Promise((resolve) => {
      const p = execFile("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "cmg.opencmg.test", "-CAfile", join(dir, "ca.pem"), ...args], { timeout: 60_000 }, (_err, stdout, stderr) => {
        const out = stdout + stderr;
        // A completed handshake names its cipher; a refused one says "(NONE)" or fails with an alert.
        const m = /Cipher is (\S+)/.exec(out);
        resolve({ ok: !!m && m[1] !== "(NONE)", out });
      });
      p.stdin?.end();
    });
  }

  it("refuses static-RSA and CBC suites on TLS 1.2, accepts ECDHE with AES-GCM and TLS 1.3", async () => {
    const port = h.ports[0]!.client;
    for (const cipher of ["AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"]) {
      const r = await sClient(port, ["-tls1_2", "-cipher", cipher]);
      assert.equal(r.ok, false, `${cipher} was accepted:\n${r.out}`);
    }
    const gcm = await sClient(port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert.equal(gcm.ok, true, gcm.out);
    const v13 = await sClient(port, ["-tls1_3"]);
    assert.equal(v13.ok, true, v13.out);
    assert.match(v13.out, /TLSv1\.3/);
  });

  it("refuses CBC suites on the tunnel listener", async () => {
    const r = await sClient(h.ports[0]!.tunnel, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]);
    assert.equal(r.ok, false, r.out);
  });

  it("answers 403 weak_signature to a SHA-1-signed client certificate, and logs it", async () => {
    const weak = await sha1Client(h.pki.intermediate);
    // The client's own OpenSSL would refuse to present a SHA-1 certificate at its default security level.
    const r = await new Promise<{ status: number; reason: unknown; body: string }>((resolve, reject) => {
      const req = https.request({
        host: "127.0.0.1",
        port: h.ports[0]!.client,
        path: `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`,
        ca: h.pki.root.certPem,
        servername: "cmg.opencmg.test",
        cert: weak.certPem,
        key: weak.keyPem,
        ciphers: "DEFAULT:@SECLEVEL=0",
        agent: false,
      });
      req.on("error", reject);
      req.on("response", (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, reason: res.headers["x-opencmg-reason"], body }));
      });
      req.end();
    });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error, "weak_signature");
    assert.equal(r.reason, "weak_signature");
    await until("the refusal in CMGHttpHandler.log", () => h.logLines("gw0", "CMGHttpHandler.log").some((l) => /refused with 403 weak_signature/.test(l.text) && /SHA-1/.test(l.text)));
  });

  it("applies the CMG's stricter client certificate policy from its settings (minRsaBits)", async () => {
    const rsa2048 = await forgeClientCert(h.pki.intermediate, { hash: "SHA-256", key: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } });
    const path = `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`;
    assert.equal((await h.request(0, path, { cert: rsa2048 })).status, 200);
    h.connectionPoints[0]!.update({ settings: h.sign({ ...h.settings, revision: 2, clientCertPolicy: { minRsaBits: 3072 } }) });
    await until("revision 2 in force", () => h.instances[0]!.status().settingsRevision === 2);
    const r = await h.request(0, path, { cert: rsa2048 });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body.toString()).error, "weak_key");
    assert.equal((await h.request(0, path, { cert: h.pki.client })).status, 200);
  });
});

/** A client certificate (P-256 key) signed by `issuer` with ECDSA-SHA1. */
function sha1Client(issuer: { certPem: string; keyPem: string }): Promise<{ certPem: string; keyPem: string }> {
  return forgeClientCert(issuer, { hash: "SHA-1", key: { name: "ECDSA", namedCurve: "P-256" } });
}

