import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../../test/helpers/databases.ts";
import { until } from "../../test/helpers/until.ts";
import { ValidationError } from "../errors.ts";
import { issueCert } from "../pki/issue.ts";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { SitePki } from "../site/site-pki.ts";
import { transportOf } from "../cli/commands/site.ts";
import { ADMIN_CERT_BASE, isLoopback } from "./admin-tls.ts";
import { startSiteServer } from "./site-server.ts";

const DAY = 24 * 3600 * 1000;

/** The certificate the listener on `port` presents now (verified against the site CA). */
function presented(port: number, caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, servername: "localhost", ca: [caPem] }, () => {
      resolve(new X509Certificate(s.getPeerCertificate().raw));
      s.end();
    });
    s.once("error", reject);
  });
}

describe("admin API transport", () => {
  it("loopback: 127.0.0.0/8, ::1 and localhost; not the wildcard or other addresses", () => {
    for (const h of ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]) assert.ok(isLoopback(h), h);
    for (const h of ["0.0.0.0", "::", "", "10.0.0.5", "128.0.0.1", "site.contoso.test", "::ffff:10.0.0.1"]) assert.ok(!isLoopback(h), h);
  });

  it("site serve options: TLS from the site CA by default; conflicting options refused naming the option", () => {
    assert.deepEqual(transportOf({ tlsName: [] }), { kind: "site-ca", names: [] });
    assert.deepEqual(transportOf({ tlsName: [], insecureHttp: true }), { kind: "http" });
    assert.deepEqual(transportOf({ tlsName: [], tlsCert: "c.pem", tlsKey: "k.pem" }), { kind: "files", certFile: "c.pem", keyFile: "k.pem" });
    const field = (o: Parameters<typeof transportOf>[0]): string => {
      try {
        transportOf(o);
      } catch (e) {
        assert.ok(e instanceof ValidationError);
        return e.field;
      }
      return "accepted";
    };
    assert.equal(field({ tlsName: [], insecureHttp: true, tlsCert: "c.pem" }), "insecure-http");
    assert.equal(field({ tlsName: [], tlsCert: "c.pem" }), "tls-key");
    assert.equal(field({ tlsName: ["a.contoso.test"], tlsCert: "c.pem", tlsKey: "k.pem" }), "tls-name");
    assert.equal(field({ tlsName: [], tlsPfx: "a.pfx", tlsCert: "c.pem" }), "tls-pfx");
    assert.equal(field({ tlsName: [], tlsPfxPasswordFile: "p" }), "tls-pfx-password-file");
  });
});

describe("admin API certificate from the site CA", () => {
  let site: OpenedSite;
  let pki: SitePki;
  before(async () => {
    site = await openSite({ dataDir: tempDir("opencmg-admin-tls-") });
    await initSite(site, { code: "P01", name: "TLS" });
    pki = new SitePki(site.paths.data);
  });
  after(async () => site?.close());

  /** Puts a site-CA certificate for the admin API on file that ends in 10 days (renewal is due at 30). */
  async function nearlyEnded(): Promise<X509Certificate> {
    const c = await issueCert({ issuer: pki.ca(), commonName: "localhost", usage: "server", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], notAfter: new Date(Date.now() + 10 * DAY) });
    writeFileSync(join(pki.dir, `${ADMIN_CERT_BASE}.pem`), c.certPem);
    writeFileSync(join(pki.dir, `${ADMIN_CERT_BASE}.key`), c.keyPem, { mode: 0o600 });
    return new X509Certificate(c.certPem);
  }

  it("refuses plain HTTP on a wildcard address", async () => {
    await assert.rejects(startSiteServer({ site, listen: { host: "0.0.0.0", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { dir: null } }), (e: unknown) => e instanceof ValidationError && e.field === "insecure-http");
  });

  it("renews a certificate near its end at start, and again while running, without a restart", async () => {
    const old = await nearlyEnded();
    const server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "site-ca" }, tlsRecheckMs: 50, endpointCheck: false, console: { dir: null } });
    try {
      assert.equal(server.caFile, join(pki.dir, "site-ca.pem"));
      const port = Number(new URL(server.url).port);
      const first = await presented(port, pki.caPem);
      assert.notEqual(first.fingerprint256, old.fingerprint256, "renewed at start");
      assert.ok(new Date(first.validTo).getTime() - Date.now() > 300 * DAY);
      // The certificate on file nears its end while the server runs: the next check replaces it.
      const replaced = await nearlyEnded();
      const next = await until("the renewed certificate presented", async () => {
        const c = await presented(port, pki.caPem);
        return c.fingerprint256 !== first.fingerprint256 && c.fingerprint256 !== replaced.fingerprint256 && c;
      });
      assert.ok(new Date(next.validTo).getTime() - Date.now() > 300 * DAY);
    } finally {
      await server.close();
    }
  });
});
