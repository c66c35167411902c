import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, webcrypto } from "node:crypto";
import { forgeClientCert, makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { thumbprintOf } from "./cert.ts";
import { createCa, issueCert } from "./issue.ts";
import { toPem } from "./pem.ts";
import { verifyClientChain } from "./verify.ts";

let pki: TestPki;
before(async () => {
  pki = await makeTestPki();
});

const der = (pem: string): Buffer => new X509Certificate(pem).raw;

test("a client issued by the intermediate verifies; the chain runs leaf, intermediate, root", () => {
  const r = verifyClientChain(der(pki.client.certPem), pki.trust);
  assert.equal(r.ok, true);
  assert.deepEqual(
    r.ok && r.chain.map((c) => thumbprintOf(c.raw)),
    [pki.client.thumbprint, pki.intermediate.thumbprint, pki.root.thumbprint],
  );
});

test("a client issued directly by the second root verifies, as an X509Certificate too", () => {
  const r = verifyClientChain(new X509Certificate(pki.clientViaRoot2.certPem), pki.trust);
  assert.equal(r.ok && r.chain.length, 2);
});

test("the revoked client passes: revocation is the CRL cache's job", () => {
  assert.equal(verifyClientChain(der(pki.revokedClient.certPem), pki.trust).ok, true);
});

const failures: [keyof TestPki, string][] = [
  ["untrustedClient", "untrusted_chain"],
  ["expiredClient", "expired"],
  ["notYetValidClient", "not_yet_valid"],
  ["wrongUsageClient", "wrong_usage"],
  ["server", "wrong_usage"],
  ["tunnelClient", "untrusted_chain"],
];
for (const [name, reason] of failures) {
  test(`${name} is refused: ${reason}`, () => {
    const r = verifyClientChain(der((pki[name] as { certPem: string }).certPem), pki.trust);
    assert.equal(r.ok ? "ok" : r.reason, reason);
    assert.ok(!r.ok && r.detail.length > 0);
  });
}

test("without the intermediate the chain is untrusted; an intermediate alone is no trust anchor", () => {
  const noSub = verifyClientChain(der(pki.client.certPem), { roots: [pki.root.certPem], intermediates: [] });
  assert.equal(!noSub.ok && noSub.reason, "untrusted_chain");
  const subOnly = verifyClientChain(der(pki.client.certPem), { roots: [], intermediates: [pki.intermediate.certPem, pki.root.certPem] });
  assert.equal(!subOnly.ok && subOnly.reason, "untrusted_chain");
});

test("an intermediate listed as a root is a trust anchor (shortest path)", () => {
  const r = verifyClientChain(der(pki.client.certPem), { roots: [pki.intermediate.certPem], intermediates: [] });
  assert.equal(r.ok && r.chain.length, 2);
});

test("`at` moves the check in time; an expired intermediate fails the chain", async () => {
  const later = new Date(Date.now() + 2 * 365 * 86_400_000);
  const r = verifyClientChain(der(pki.client.certPem), { ...pki.trust, at: later });
  assert.equal(!r.ok && r.reason, "expired");

  const root = await createCa({ commonName: "Root" });
  const shortSub = await createCa({ commonName: "Short Sub", issuer: root, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  const leaf = await issueCert({ issuer: shortSub, commonName: "pc", usage: "client" });
  const e = verifyClientChain(der(leaf.certPem), { roots: [root.certPem], intermediates: [shortSub.certPem] });
  assert.equal(!e.ok && e.reason, "expired");
  assert.match(!e.ok ? e.detail : "", /Short Sub/);
});

test("a same-named CA with another key does not complete the chain", async () => {
  const impostor = await createCa({ commonName: "OpenCMG Test Issuing CA", issuer: pki.root });
  const r = verifyClientChain(der(pki.client.certPem), { roots: [pki.root.certPem], intermediates: [impostor.certPem] });
  assert.equal(!r.ok && r.reason, "untrusted_chain");
  const both = verifyClientChain(der(pki.client.certPem), { roots: [pki.root.certPem], intermediates: [impostor.certPem, pki.intermediate.certPem] });
  assert.equal(both.ok, true);
});

test("a leaf signed with the key of a non-CA certificate is untrusted", async () => {
  // issueCert refuses a non-CA issuer, so forge one with the library directly.
  const crypto = webcrypto as unknown as Crypto;
  const signerCert = new x509.X509Certificate(pki.client.certPem);
  const signerKey = await crypto.subtle.importKey(
    "pkcs8",
    new Uint8Array(x509.PemConverter.decodeFirst(pki.client.keyPem)),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const forged = await x509.X509CertificateGenerator.create(
    {
      subject: "CN=forged",
      issuer: signerCert.subjectName,
      publicKey: keys.publicKey,
      signingKey: signerKey,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
    },
    crypto,
  );
  const trust = { roots: [pki.root.certPem], intermediates: [pki.intermediate.certPem, pki.client.certPem] };
  const r = verifyClientChain(der(toPem(forged.rawData, "CERTIFICATE")), trust);
  assert.equal(!r.ok && r.reason, "untrusted_chain");
});

/** A client certificate under the test intermediate with the key and hash the test picks (PEM). */
async function forgeClient(o: { key: RsaHashedKeyGenParams | EcKeyGenParams; hash: string }): Promise<string> {
  return (await forgeClientCert(pki.intermediate, o)).certPem;
}

test("a SHA-1-signed client certificate is refused as weak_signature; SHA-256 passes", async () => {
  const ec = { name: "ECDSA", namedCurve: "P-256" };
  assert.equal(verifyClientChain(der(await forgeClient({ key: ec, hash: "SHA-256" })), pki.trust).ok, true);
  const r = verifyClientChain(der(await forgeClient({ key: ec, hash: "SHA-1" })), pki.trust);
  assert.equal(!r.ok && r.reason, "weak_signature");
  assert.match(!r.ok ? r.detail : "", /SHA-1/);
});

test("an RSA-1024 client key is refused as weak_key; RSA-2048 passes", async () => {
  const rsa = (bits: number) => ({ name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" });
  assert.equal(verifyClientChain(der(await forgeClient({ key: rsa(2048), hash: "SHA-256" })), pki.trust).ok, true);
  const r = verifyClientChain(der(await forgeClient({ key: rsa(1024), hash: "SHA-256" })), pki.trust);
  assert.equal(!r.ok && r.reason, "weak_key");
  assert.match(!r.ok ? r.detail : "", /1024-bit RSA/);
});

test("a CMG's policy may ask for longer RSA keys, never shorter ones", async () => {
  const rsa = (bits: number) => ({ name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" });
  const rsa2048 = der(await forgeClient({ key: rsa(2048), hash: "SHA-256" }));
  const r = verifyClientChain(rsa2048, { ...pki.trust, policy: { minRsaBits: 3072 } });
  assert.equal(!r.ok && r.reason, "weak_key");
  assert.match(!r.ok ? r.detail : "", /at least 3072 bits/);
  assert.equal(verifyClientChain(der(await forgeClient({ key: rsa(1024), hash: "SHA-256" })), { ...pki.trust, policy: { minRsaBits: 512 } }).ok, false);
  assert.equal(verifyClientChain(rsa2048, { ...pki.trust, policy: { minRsaBits: 1024 } }).ok, true);
});
