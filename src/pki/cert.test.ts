import { before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { ValidationError } from "../errors.ts";
import { EKU, crlUrls, describe, hasClientAuthEku, parseCertificates, thumbprintOf, validityOf } from "./cert.ts";

let pki: TestPki;
before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test", crlBaseUrl: "http://127.0.0.1:9" });
});

test("parseCertificates splits a PEM bundle, in order, skipping other text and blocks", () => {
  const bundle = `Bag Attributes\n${pki.client.certPem}${pki.client.keyPem}junk\n${pki.intermediate.certPem}\n${pki.root.certPem}`;
  const certs = parseCertificates(bundle);
  assert.deepEqual(
    certs.map((c) => thumbprintOf(c.raw)),
    [pki.client.thumbprint, pki.intermediate.thumbprint, pki.root.thumbprint],
  );
  assert.equal(parseCertificates(Buffer.from(bundle)).length, 3);
});

test("parseCertificates reads one DER certificate", () => {
  const der = new X509Certificate(pki.root.certPem).raw;
  assert.equal(thumbprintOf(parseCertificates(der)[0]!.raw), pki.root.thumbprint);
});

test("parseCertificates throws ValidationError naming the field for anything else", () => {
  for (const bad of ["", "hello", pki.client.keyPem, Buffer.from([0x30, 0x03, 0x01])]) {
    assert.throws(() => parseCertificates(bad, "trustedRoots"), (e: unknown) => e instanceof ValidationError && e.field === "trustedRoots");
  }
});

test("describe summarises a server certificate", () => {
  const d = describe(new X509Certificate(pki.server.certPem));
  assert.equal(d.subject, "CN=cmg.contoso.test");
  assert.equal(d.commonName, "cmg.contoso.test");
  assert.deepEqual(d.dnsNames, ["cmg.contoso.test"]);
  assert.equal(d.thumbprint, pki.server.thumbprint);
  assert.equal(d.serialHex, pki.server.serialHex);
  assert.equal(d.isCa, false);
  assert.deepEqual(d.ekus, [EKU.serverAuth]);
  assert.deepEqual(d.crlUrls, []);
  assert.ok(d.notBefore < new Date() && d.notAfter > new Date());
});

test("describe summarises a CA and a client certificate with a CDP", () => {
  const ca = describe(new X509Certificate(pki.intermediate.certPem));
  assert.equal(ca.isCa, true);
  assert.deepEqual(ca.ekus, []);
  assert.deepEqual(ca.crlUrls, ["http://127.0.0.1:9/root.crl"]);
  const client = new X509Certificate(pki.client.certPem);
  assert.deepEqual(describe(client).crlUrls, ["http://127.0.0.1:9/intermediate.crl"]);
  assert.deepEqual(crlUrls(client), ["http://127.0.0.1:9/intermediate.crl"]);
});

test("validityOf gives Dates", () => {
  const { notBefore, notAfter } = validityOf(new X509Certificate(pki.expiredClient.certPem));
  assert.ok(notAfter < new Date() && notBefore < notAfter);
});

test("hasClientAuthEku: clientAuth yes, serverAuth-only and codeSigning no, no EKU extension yes", () => {
  assert.equal(hasClientAuthEku(new X509Certificate(pki.client.certPem)), true);
  assert.equal(hasClientAuthEku(new X509Certificate(pki.tunnelClient.certPem)), true);
  assert.equal(hasClientAuthEku(new X509Certificate(pki.server.certPem)), false);
  assert.equal(hasClientAuthEku(new X509Certificate(pki.wrongUsageClient.certPem)), false);
  // RFC 5280: a certificate without the EKU extension is not restricted (our CAs have none).
  assert.equal(hasClientAuthEku(new X509Certificate(pki.root.certPem)), true);
});
