import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { ValidationError } from "../errors.ts";
import { EKU, describe } from "./cert.ts";
import { createCa, createCrl, issueCert } from "./issue.ts";
import { parseCrl } from "./crl.ts";

test("createCa makes a self-signed root CA", async () => {
  const root = await createCa({ commonName: "Root, with a comma" });
  const cert = new X509Certificate(root.certPem);
  const d = describe(cert);
  assert.equal(d.commonName, "Root, with a comma");
  assert.equal(d.isCa, true);
  assert.equal(cert.checkIssued(cert), true);
  assert.equal(cert.verify(cert.publicKey), true);
  assert.match(root.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal(cert.checkPrivateKey(createPrivateKey(root.keyPem)), true);
  assert.equal(createPrivateKey(root.keyPem).asymmetricKeyDetails?.namedCurve, "prime256v1");
  const p = new x509.X509Certificate(cert.raw);
  const ku = p.getExtension(x509.KeyUsagesExtension)!;
  assert.ok(ku.critical && ku.usages & x509.KeyUsageFlags.keyCertSign && ku.usages & x509.KeyUsageFlags.cRLSign);
  assert.equal(p.getExtension(x509.BasicConstraintsExtension)?.critical, true);
  assert.equal(p.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, p.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId);
});

test("createCa with an issuer makes an intermediate signed by it, with AKI = issuer SKI and a CDP", async () => {
  const root = await createCa({ commonName: "Root" });
  const sub = await createCa({ commonName: "Sub", issuer: root, crlUrl: "http://127.0.0.1:9/root.crl" });
  const rootCert = new X509Certificate(root.certPem);
  const subCert = new X509Certificate(sub.certPem);
  assert.equal(subCert.checkIssued(rootCert), true);
  assert.equal(subCert.verify(rootCert.publicKey), true);
  assert.equal(subCert.ca, true);
  assert.deepEqual(describe(subCert).crlUrls, ["http://127.0.0.1:9/root.crl"]);
  assert.equal(subCert.issuer, rootCert.subject);
  const rootSki = new x509.X509Certificate(rootCert.raw).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  assert.equal(new x509.X509Certificate(subCert.raw).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, rootSki);
});

test("issueCert sets EKUs by usage, SANs, CDP, and a positive 16-byte serial", async () => {
  const ca = await createCa({ commonName: "CA" });
  const usages = { server: [EKU.serverAuth], client: [EKU.clientAuth], "server+client": [EKU.serverAuth, EKU.clientAuth], none: [EKU.codeSigning] } as const;
  for (const [usage, ekus] of Object.entries(usages)) {
    const leaf = await issueCert({ issuer: ca, commonName: `leaf-${usage}`, usage: usage as keyof typeof usages });
    assert.deepEqual(describe(new X509Certificate(leaf.certPem)).ekus, ekus, usage);
  }
  const leaf = await issueCert({
    issuer: ca,
    commonName: "cmg.contoso.test",
    dnsNames: ["cmg.contoso.test", "*.cmg.contoso.test"],
    ipAddresses: ["127.0.0.1", "::1"],
    usage: "server",
    crlUrl: "http://127.0.0.1:9/ca.crl",
  });
  const cert = new X509Certificate(leaf.certPem);
  const d = describe(cert);
  assert.deepEqual(d.dnsNames, ["cmg.contoso.test", "*.cmg.contoso.test"]);
  assert.equal(cert.checkHost("cmg.contoso.test"), "cmg.contoso.test");
  assert.equal(cert.checkIP("127.0.0.1"), "127.0.0.1");
  assert.deepEqual(d.crlUrls, ["http://127.0.0.1:9/ca.crl"]);
  assert.equal(d.isCa, false);
  assert.equal(leaf.serialHex, cert.serialNumber.toUpperCase());
  assert.match(leaf.serialHex, /^[0-7][0-9A-F]{31}$/);
  assert.notEqual(leaf.serialHex.slice(0, 2), "00");
  assert.equal(leaf.thumbprint, cert.fingerprint.replaceAll(":", ""));
  assert.equal(cert.checkPrivateKey(createPrivateKey(leaf.keyPem)), true);
});

test("issueCert honours notBefore/notAfter", async () => {
  const ca = await createCa({ commonName: "CA" });
  const notBefore = new Date("2030-01-01T00:00:00Z");
  const notAfter = new Date("2030-02-01T00:00:00Z");
  const leaf = await issueCert({ issuer: ca, commonName: "later", usage: "client", notBefore, notAfter });
  const d = describe(new X509Certificate(leaf.certPem));
  assert.equal(d.notBefore.toISOString(), notBefore.toISOString());
  assert.equal(d.notAfter.toISOString(), notAfter.toISOString());
});

test("issueCert refuses a non-CA issuer, a mismatched key and a bad IP address", async () => {
  const ca = await createCa({ commonName: "CA" });
  const other = await createCa({ commonName: "Other" });
  const leaf = await issueCert({ issuer: ca, commonName: "leaf", usage: "client" });
  await assert.rejects(issueCert({ issuer: leaf, commonName: "x", usage: "client" }), (e: unknown) => e instanceof ValidationError && e.field === "issuer");
  await assert.rejects(
    issueCert({ issuer: { certPem: ca.certPem, keyPem: other.keyPem }, commonName: "x", usage: "client" }),
    (e: unknown) => e instanceof ValidationError && /does not belong/.test(e.rule),
  );
  await assert.rejects(issueCert({ issuer: ca, commonName: "x", usage: "server", ipAddresses: ["cmg.local"] }), (e: unknown) => e instanceof ValidationError && e.field === "ipAddresses");
});

test("createCrl writes an X509 CRL PEM signed by the issuer, listing the revoked serials", async () => {
  const ca = await createCa({ commonName: "CA" });
  const a = await issueCert({ issuer: ca, commonName: "a", usage: "client" });
  const b = await issueCert({ issuer: ca, commonName: "b", usage: "client" });
  const nextUpdate = new Date(Date.now() + 86_400_000);
  const pem = await createCrl({ issuer: ca, revoked: [{ serialHex: a.serialHex }], nextUpdate });
  assert.match(pem, /^-----BEGIN X509 CRL-----\n[\s\S]+\n-----END X509 CRL-----\n$/);
  const crl = parseCrl(pem);
  assert.equal(crl.nextUpdate?.getTime(), Math.floor(nextUpdate.getTime() / 1000) * 1000);
  assert.ok(crl.findRevoked(a.serialHex));
  assert.equal(crl.findRevoked(b.serialHex), null);
  assert.equal(await crl.verify({ publicKey: new x509.X509Certificate(ca.certPem) }), true);
  const empty = parseCrl(await createCrl({ issuer: ca, revoked: [], nextUpdate }));
  assert.equal(empty.entries.length, 0);
});

test("a joining host's request: its key stays with it, the certificate is issued for that key; a request with a broken signature is refused", async () => {
  const { createCsr, issueCertForKey, verifiedCsrKey } = await import("./issue.ts");
  const ca = await createCa({ commonName: "Site CA" });
  const { keyPem, csrPem } = await createCsr("cp01.contoso.test");
  const issued = await issueCertForKey({ issuer: ca, publicKey: await verifiedCsrKey(csrPem), commonName: "cp01.contoso.test", dnsNames: ["cp01.contoso.test"], usage: "server+client" });
  const cert = new X509Certificate(issued.certPem);
  assert.equal(cert.checkPrivateKey(createPrivateKey(keyPem)), true);
  assert.equal(cert.checkIssued(new X509Certificate(ca.certPem)), true);
  assert.equal(cert.subjectAltName, "DNS:cp01.contoso.test");
  assert.deepEqual(describe(cert).ekus.sort(), [EKU.clientAuth, EKU.serverAuth].sort());
  assert.equal(issued.serialHex, cert.serialNumber.toUpperCase());

  // The last byte of the signature changed: still DER, no longer signed by the key it carries.
  const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
  der[der.length - 1] = der[der.length - 1]! ^ 0x01;
  const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(verifiedCsrKey(forged), (e: ValidationError) => e instanceof ValidationError && e.field === "csr" && /signature does not verify/.test(e.message));
});
