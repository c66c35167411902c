import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, test } from "node:test";
import { forgeClientCert, makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { crlUrls, hasClientAuthEku, subjectText, validityOf } from "./cert.ts";
import { certificateFacts, SIGNATURE_HASHES } from "./der.ts";
import { issueCert } from "./issue.ts";

let pki: TestPki;
/** Every certificate the tests compare: the test PKI's, and the odd ones below. */
const certs: { name: string; pem: string }[] = [];
before(async () => {
  pki = await makeTestPki({ crlBaseUrl: "http://127.0.0.1:9/crl" });
  for (const [name, c] of Object.entries(pki)) {
    if (c && typeof c === "object" && "certPem" in c) certs.push({ name, pem: (c as { certPem: string }).certPem });
  }
  // UTCTime from 1999 and GeneralizedTime from 2050 on; a subject that needs escaping; SANs.
  certs.push({
    name: "1999-2060",
    pem: (await issueCert({ issuer: pki.intermediate, commonName: 'Contoso, Inc. "PC" +1', dnsNames: ["pc.contoso.test"], usage: "client", notBefore: new Date("1999-12-31T23:59:58Z"), notAfter: new Date("2060-02-29T12:00:00Z"), crlUrl: "http://a.test/1.crl" })).certPem,
  });
  certs.push({ name: "sha1", pem: (await forgeClientCert(pki.intermediate, { key: { name: "ECDSA", namedCurve: "P-256" }, hash: "SHA-1" })).certPem });
  certs.push({ name: "sha384", pem: (await forgeClientCert(pki.intermediate, { key: { name: "ECDSA", namedCurve: "P-384" }, hash: "SHA-384" })).certPem });
});

test("the DER walk reads what the full parser reads: validity, EKU, CRL URLs, subject, signature hash", () => {
  assert.ok(certs.length >= 16);
  for (const { name, pem } of certs) {
    const node = new X509Certificate(pem);
    const full = new x509.X509Certificate(pem);
    const facts = certificateFacts(node.raw);
    assert.equal(facts.notBefore.toISOString(), full.notBefore.toISOString(), `${name} notBefore`);
    assert.equal(facts.notAfter.toISOString(), full.notAfter.toISOString(), `${name} notAfter`);
    assert.deepEqual(validityOf(node), { notBefore: full.notBefore, notAfter: full.notAfter }, name);
    const eku = full.getExtension(x509.ExtendedKeyUsageExtension);
    const ekus = eku ? Array.from(eku.usages, String) : [];
    assert.equal(hasClientAuthEku(node), !eku || ekus.includes("1.3.6.1.5.5.7.3.2") || ekus.includes("2.5.29.37.0"), `${name} clientAuth`);
    const cdp = full.getExtension(x509.CRLDistributionPointsExtension);
    const urls = Array.from(cdp?.distributionPoints ?? []).flatMap((dp) => (dp.distributionPoint?.fullName ?? []).flatMap((n) => (n.uniformResourceIdentifier ? [n.uniformResourceIdentifier] : [])));
    assert.deepEqual(crlUrls(node), urls, `${name} CRL URLs`);
    assert.equal(subjectText(node), full.subject, `${name} subject`);
    const hash = (full.signatureAlgorithm as { hash?: { name?: string } }).hash?.name?.toUpperCase();
    assert.ok(SIGNATURE_HASHES.has(facts.signatureOid), `${name}: ${facts.signatureOid} is a known algorithm`);
    assert.equal(SIGNATURE_HASHES.get(facts.signatureOid), hash, `${name} signature hash`);
  }
  const odd = certificateFacts(new X509Certificate(certs.find((c) => c.name === "1999-2060")!.pem).raw);
  assert.equal(odd.notBefore.toISOString(), "1999-12-31T23:59:58.000Z");
  assert.equal(odd.notAfter.toISOString(), "2060-02-29T12:00:00.000Z");
  assert.equal(subjectText(new X509Certificate(certs.find((c) => c.name === "1999-2060")!.pem)), new x509.X509Certificate(certs.find((c) => c.name === "1999-2060")!.pem).subject);
});

test("the DER walk refuses what it does not understand (the callers then use the full parser)", () => {
  const der = new X509Certificate(pki.client.certPem).raw;
  assert.throws(() => certificateFacts(der.subarray(0, der.length - 10)), /DER/);
  assert.throws(() => certificateFacts(Buffer.from([0x30, 0x80, 0, 0])), /DER/);
  assert.throws(() => certificateFacts(Buffer.from([0x04, 0x00])), /DER/);
});
