import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { createCa, issueCert } from "./issue.ts";
import { TLS_POLICY } from "./tls-policy.ts";

/**
 * The server's handshake_failure alert (no suite in common), as the client's OpenSSL names it:
 * SSLV3_ALERT_HANDSHAKE_FAILURE up to OpenSSL 3.4 (Node 20, 22), SSL/TLS_ALERT_HANDSHAKE_FAILURE
 * from 3.5 (Node 24). The same alert either way; any other error fails.
 */
const HANDSHAKE_FAILURE_ALERT = /^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_HANDSHAKE_FAILURE$/;

describe("the TLS policy of internet-facing listeners", () => {
  let server: tls.Server;
  let port: number;
  let ca: string;
  before(async () => {
    const root = await createCa({ commonName: "Policy Test CA" });
    const cert = await issueCert({ issuer: root, commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], usage: "server" });
    ca = root.certPem;
    server = tls.createServer({ ...TLS_POLICY, cert: cert.certPem, key: cert.keyPem }, (s) => s.end("ok"));
    server.on("tlsClientError", () => undefined);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const handshake = (o: tls.ConnectionOptions): Promise<{ ok: true; cipher: string; version: string } | { ok: false; error: string }> =>
    new Promise((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca, ...o }, () => {
        const r = { ok: true as const, cipher: s.getCipher().name, version: s.getProtocol() ?? "" };
        s.destroy();
        resolve(r);
      });
      s.on("error", (e) => resolve({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    });

  it("speaks TLS 1.3, and TLS 1.2 with ECDHE and an AEAD cipher", async () => {
    const r13 = await handshake({});
    assert.equal(r13.ok && r13.version, "TLSv1.3");
    const r12 = await handshake({ maxVersion: "TLSv1.2" });
    assert.ok(r12.ok && /^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20)/.test(r12.cipher), JSON.stringify(r12));
  });

  it("refuses a TLS 1.2 client that offers only CBC suites, or only TLS 1.1", async () => {
    const cbc = await handshake({ maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256" });
    // Refused for the reason named, by the server's alert: no suite in common, then no version in common.
    assert.equal(cbc.ok, false);
    assert.match(String(cbc.error), HANDSHAKE_FAILURE_ALERT);
    const old = await handshake({ maxVersion: "TLSv1.1", minVersion: "TLSv1", ciphers: "DEFAULT@SECLEVEL=0" });
    assert.deepEqual(old, { ok: false, error: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" });
  });
});

describe("an RSA server certificate under the policy", () => {
  // Static-RSA key exchange needs an RSA server key: made with openssl (a runtime requirement anyway).
  const dir = mkdtempSync(join(tmpdir(), "opencmg-tls-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1"], { stdio: "ignore" });
  const cert = readFileSync(join(dir, "c.pem"), "utf8");
  const key = readFileSync(join(dir, "k.pem"), "utf8");
  after(() => rmSync(dir, { recursive: true, force: true }));

  const serve = async (policy: tls.TlsOptions): Promise<tls.Server> => {
    const s = tls.createServer({ ...policy, cert, key }, (c) => c.end());
    s.on("tlsClientError", () => undefined);
    s.listen(0, "127.0.0.1");
    await once(s, "listening");
    return s;
  };
  /** "connected", or the error code the handshake failed with. */
  const tryStaticRsa = (s: tls.Server): Promise<string> =>
    new Promise((resolve) => {
      const c = tls.connect({ host: "127.0.0.1", port: (s.address() as AddressInfo).port, ca: cert, servername: "localhost", maxVersion: "TLSv1.2", ciphers: "AES128-GCM-SHA256:AES256-SHA:AES128-SHA" }, () => {
        c.destroy();
        resolve("connected");
      });
      c.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });

  it("offers no static-RSA key exchange (Node's defaults do)", async () => {
    const plain = await serve({});
    const strict = await serve(TLS_POLICY);
    try {
      assert.equal(await tryStaticRsa(plain), "connected", "the test's client can negotiate static RSA with Node's defaults");
      // The server's handshake_failure alert: no suite in common (not some other failure).
      assert.match(String(await tryStaticRsa(strict)), HANDSHAKE_FAILURE_ALERT);
    } finally {
      plain.close();
      strict.close();
    }
  });
});
