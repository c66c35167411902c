import { before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { ValidationError } from "../errors.ts";
import { thumbprintOf } from "./cert.ts";
import { createCa, issueCert, type IssuedCert } from "./issue.ts";
import { readPfx, writePfx } from "./pfx.ts";

let root: IssuedCert;
let sub: IssuedCert;
let server: IssuedCert;
before(async () => {
  root = await createCa({ commonName: "PFX Root" });
  sub = await createCa({ commonName: "PFX Sub", issuer: root });
  server = await issueCert({ issuer: sub, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], usage: "server" });
});

const thumb = (pem: string): string => thumbprintOf(new X509Certificate(pem).raw);

test("writePfx then readPfx gives back the certificate, the key and the chain in issuer order", () => {
  // Chain given root first on purpose: readPfx orders it from the leaf's issuer upwards.
  const pfx = writePfx({ certPem: server.certPem, keyPem: server.keyPem, chainPem: [root.certPem, sub.certPem], password: "p@ss w0rd; $HOME" });
  assert.equal(pfx[0], 0x30); // DER SEQUENCE
  const out = readPfx(pfx, "p@ss w0rd; $HOME");
  assert.equal(thumb(out.certPem), server.thumbprint);
  assert.deepEqual(out.chainPem.map(thumb), [sub.thumbprint, root.thumbprint]);
  assert.match(out.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(new X509Certificate(out.certPem).checkPrivateKey(createPrivateKey(out.keyPem)), true);
});

test("a PFX without a chain and with an empty password", () => {
  const out = readPfx(writePfx({ certPem: server.certPem, keyPem: server.keyPem, password: "" }), "");
  assert.equal(thumb(out.certPem), server.thumbprint);
  assert.deepEqual(out.chainPem, []);
});

test("a legacy (RC2/3DES) PFX is read through OpenSSL's legacy provider", () => {
  const out = readPfx(writePfx({ certPem: server.certPem, keyPem: server.keyPem, chainPem: [sub.certPem], password: "old", legacy: true }), "old");
  assert.equal(thumb(out.certPem), server.thumbprint);
  assert.deepEqual(out.chainPem.map(thumb), [sub.thumbprint]);
});

test("a wrong password is ValidationError(pfxPassword)", () => {
  const pfx = writePfx({ certPem: server.certPem, keyPem: server.keyPem, password: "right" });
  for (const pfxFile of [pfx, writePfx({ certPem: server.certPem, keyPem: server.keyPem, password: "right", legacy: true })]) {
    assert.throws(
      () => readPfx(pfxFile, "wrong"),
      (e: unknown) => e instanceof ValidationError && e.field === "pfxPassword" && e.rule === "the password does not open the PFX file",
    );
  }
});

test("something that is not a PFX is ValidationError(pfxFile), and the message never holds the password", () => {
  for (const junk of [Buffer.from("hello"), Buffer.from(server.certPem), Buffer.alloc(0)]) {
    assert.throws(
      () => readPfx(junk, "hunter2-secret"),
      (e: unknown) => e instanceof ValidationError && e.field === "pfxFile" && !e.message.includes("hunter2"),
    );
  }
});
