import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ValidationError } from "../errors.ts";
import { createCa, issueCert, type IssuedCert } from "../pki/issue.ts";
import { writePfx } from "../pki/pfx.ts";
import { caCertificatesFromFiles, renewalFromFiles, serverCertificateFromFiles } from "./certificate-files.ts";

const field = (name: string) => (e: unknown) => e instanceof ValidationError && e.field === name;

describe("CMG certificate files", () => {
  let root: IssuedCert;
  let sub: IssuedCert;
  let server: IssuedCert;
  before(async () => {
    root = await createCa({ commonName: "Files Root" });
    sub = await createCa({ commonName: "Files Sub", issuer: root });
    server = await issueCert({ issuer: sub, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], usage: "server" });
  });

  it("splits a PEM file into the certificate and its chain, and takes the key as it is", () => {
    const s = serverCertificateFromFiles({ cert: { name: "server.pem", content: Buffer.from(server.certPem + sub.certPem) }, key: { name: "server.key", content: server.keyPem } });
    assert.equal(s.certPem.trim(), server.certPem.trim());
    assert.deepEqual(s.chainPem.map((p) => p.trim()), [sub.certPem.trim()]);
    assert.equal(s.keyPem, server.keyPem);
  });

  it("opens a PFX given as bytes with its password", () => {
    const pfx = writePfx({ certPem: server.certPem, keyPem: server.keyPem, chainPem: [sub.certPem], password: "pw" });
    const s = serverCertificateFromFiles({ pfx: { name: "upload.pfx", content: pfx }, pfxPassword: "pw" });
    assert.equal(s.certPem.trim(), server.certPem.trim());
    assert.equal(s.chainPem.length, 1);
    assert.match(s.keyPem, /PRIVATE KEY/);
    assert.throws(() => serverCertificateFromFiles({ pfx: { name: "upload.pfx", content: pfx }, pfxPassword: "wrong" }), field("pfxPassword"));
  });

  it("refuses what does not make a server certificate, naming the field", () => {
    const cert = { name: "server.pem", content: server.certPem };
    const key = { name: "server.key", content: server.keyPem };
    const pfx = { name: "a.pfx", content: Buffer.from([0x30]) };
    assert.throws(() => serverCertificateFromFiles({}), field("serverCert"));
    assert.throws(() => serverCertificateFromFiles({ cert }), field("serverKey"));
    assert.throws(() => serverCertificateFromFiles({ pfx, cert, key }), field("serverPfx"));
    assert.throws(() => serverCertificateFromFiles({ pfx }), field("pfxPassword"));
    assert.throws(
      () => serverCertificateFromFiles({ cert: { name: "notes.txt", content: "hello" }, key }),
      (e: unknown) => e instanceof ValidationError && e.field === "serverCert" && /notes\.txt holds no PEM certificate/.test(e.message),
    );
  });

  it("reads every CA of each file (one CA or a bundle)", () => {
    assert.equal(caCertificatesFromFiles("trustedRoot", undefined), undefined);
    const cas = caCertificatesFromFiles("intermediate", [{ name: "bundle.pem", content: root.certPem + sub.certPem }, { name: "sub.pem", content: Buffer.from(sub.certPem) }]);
    assert.equal(cas?.length, 3);
    assert.throws(() => caCertificatesFromFiles("intermediate", [{ name: "empty.pem", content: "" }]), field("intermediate"));
  });

  it("passes a renewal's certificate and key through as text", () => {
    assert.deepEqual(renewalFromFiles(undefined, undefined), {});
    assert.deepEqual(renewalFromFiles({ name: "c", content: Buffer.from("C") }, { name: "k", content: "K" }), { serverCertPem: "C", serverKeyPem: "K" });
  });
});
