import { test } from "node:test";
import assert from "node:assert/strict";
import { looksLikePem, pemBlocks, toPem } from "./pem.ts";

test("toPem writes 64-character lines that pemBlocks reads back", () => {
  const der = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
  const pem = toPem(der, "X509 CRL");
  const lines = pem.trimEnd().split("\n");
  assert.equal(lines[0], "-----BEGIN X509 CRL-----");
  assert.equal(lines.at(-1), "-----END X509 CRL-----");
  assert.ok(lines.slice(1, -1).every((l) => l.length <= 64));
  assert.deepEqual(pemBlocks(`junk\r\n${pem.replaceAll("\n", "\r\n")}more`), [{ label: "X509 CRL", der }]);
});

test("pemBlocks keeps order and labels, and ignores unterminated blocks", () => {
  const text = toPem(Buffer.from([1]), "CERTIFICATE") + toPem(Buffer.from([2]), "PRIVATE KEY") + "-----BEGIN CERTIFICATE-----\nAAAA\n";
  assert.deepEqual(pemBlocks(text).map((b) => [b.label, b.der[0]]), [["CERTIFICATE", 1], ["PRIVATE KEY", 2]]);
});

test("looksLikePem tells PEM text from DER", () => {
  assert.equal(looksLikePem(toPem(Buffer.from([1]), "CERTIFICATE")), true);
  assert.equal(looksLikePem(Buffer.from([0x30, 0x82, 0x01, 0x00])), false);
});
