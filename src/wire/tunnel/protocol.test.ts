import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { makeTestPki, type TestPki } from "../../../test/helpers/pki-fixtures.ts";
import { newSettingsKey } from "../../../test/helpers/settings-signer.ts";
import { signSettings } from "./signed-settings.ts";
import { clientResponseHeaders, encodeHeaderValue, tunnelRequestHeaders } from "./headers.ts";
import { LineSplitter, connectionPointName, encodeMessage, parseConnectorMessage, parseGatewayMessage, parseSettings, type CmgSettings } from "./protocol.ts";

describe("tunnel protocol messages", () => {
  let pki: TestPki;
  let settings: CmgSettings;
  before(async () => {
    pki = await makeTestPki();
    settings = { revision: 3, cmg: "cmg1", settingsKeys: [newSettingsKey().jwk], connectionPoints: [], trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: true, urlMap: { "16777217": { kind: "mp", allowCmgTraffic: true } } };
  });

  it("round-trips settings and hello messages as NDJSON", () => {
    const document = signSettings(settings, [newSettingsKey().signing]);
    const line = encodeMessage({ type: "settings", document });
    assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
    assert.deepEqual(parseConnectorMessage(line), { type: "settings", document });
    assert.deepEqual(parseGatewayMessage(encodeMessage({ type: "settings-applied", revision: 3 })), { type: "settings-applied", revision: 3 });
  });

  it("ignores message types it does not know (a newer peer may send more)", () => {
    assert.equal(parseConnectorMessage('{"type":"drain-hint","in":5}'), null);
    assert.equal(parseGatewayMessage('{"type":"stats"}'), null);
  });

  it("enforces the product's limits: 2 trusted roots, 4 intermediates, CA certificates only", () => {
    assert.throws(() => parseSettings({ ...settings, trustedRoots: [...pki.trust.roots, pki.untrustedRoot.certPem] }), { field: "settings.trustedRoots" });
    const five = Array.from({ length: 5 }, () => pki.intermediate.certPem);
    assert.throws(() => parseSettings({ ...settings, intermediates: five }), { field: "settings.intermediates" });
    assert.throws(() => parseSettings({ ...settings, trustedRoots: [pki.client.certPem] }), { field: "settings.trustedRoots.0", rule: "must be a CA certificate" });
    assert.throws(() => parseSettings({ ...settings, trustedRoots: ["not a certificate"] }), { field: "settings.trustedRoots.0" });
    assert.throws(() => parseSettings({ ...settings, urlMap: { "../etc": { kind: "mp", allowCmgTraffic: true } } }), { name: "ValidationError" });
    assert.throws(() => parseSettings({ ...settings, urlMap: { "1": { kind: "dp", allowCmgTraffic: true } } }), { name: "ValidationError" });
    // A CMG's client certificate policy may only be stricter than the defaults.
    assert.equal(parseSettings({ ...settings, clientCertPolicy: { minRsaBits: 3072 } }).clientCertPolicy?.minRsaBits, 3072);
    assert.throws(() => parseSettings({ ...settings, clientCertPolicy: { minRsaBits: 1024 } }), { field: "settings.clientCertPolicy.minRsaBits" });
    assert.throws(() => parseSettings({ ...settings, clientCertPolicy: { allowSha1: true } }), { name: "ValidationError" });
  });

  it("carries a server certificate only with its own key, and never says the key in a refusal", () => {
    const ok = parseSettings({ ...settings, serverCert: { certPem: pki.server.certPem, keyPem: pki.server.keyPem } });
    assert.equal(ok.serverCert?.certPem, pki.server.certPem);
    for (const [serverCert, field, rule] of [
      [{ certPem: pki.server.certPem, keyPem: pki.client.keyPem }, "settings.serverCert.keyPem", /the certificate's private key/],
      [{ certPem: pki.server.certPem, keyPem: "not a key" }, "settings.serverCert.keyPem", /PEM private key/],
      [{ certPem: "not a certificate", keyPem: pki.server.keyPem }, "settings.serverCert.certPem", /PEM certificate/],
    ] as const) {
      assert.throws(
        () => parseSettings({ ...settings, serverCert }),
        (e: unknown) => (e as { field?: string }).field === field && rule.test((e as Error).message) && !(e as Error).message.includes("PRIVATE KEY") && (serverCert.keyPem.length < 80 || !(e as Error).message.includes(serverCert.keyPem.slice(40, 80))),
        field,
      );
    }
    assert.throws(() => parseSettings({ ...settings, serverCert: { certPem: pki.server.certPem } }), { name: "ValidationError" });
  });
});

describe("LineSplitter", () => {
  it("splits lines across chunk boundaries and skips blank lines", () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push(Buffer.from('{"a":1}\n{"b"')), ['{"a":1}']);
    assert.deepEqual(s.push(Buffer.from(':2}\n\n{"c":3}\n')), ['{"b":2}', '{"c":3}']);
  });

  it("refuses a line longer than its limit", () => {
    const s = new LineSplitter(16);
    assert.throws(() => s.push(Buffer.alloc(17, 0x61)), /longer than 16 bytes/);
  });
});

describe("header rewriting", () => {
  const identity = { method: "mtls" as const, thumbprint: "AB", subject: "CN=Jürgen's PC, O=Contoso", sans: ["DNS:pc.contoso.com", "IP Address:10.0.0.5"] };

  it("percent-encodes non-ASCII identity values and '%'", () => {
    assert.equal(encodeHeaderValue("CN=Jürgen 100%"), "CN=J%C3%BCrgen 100%25");
    assert.equal(decodeURIComponent(encodeHeaderValue("CN=Jürgen 100%")), "CN=Jürgen 100%");
  });

  it("builds tunnel request headers: routing and identity added, reserved and hop-by-hop removed", () => {
    const out = tunnelRequestHeaders(
      { host: "cmg.contoso.com", connection: "x-a, close", "x-a": "1", te: "trailers", "x-opencmg-client-subject": "CN=forged", "opencmg-role": "2", accept: "*/*" },
      { method: "POST", path: "/SMS_MP/.sms_pol?x", roleId: "1", requestId: "r1", identity, clientAddress: "203.0.113.9" },
    );
    assert.equal(out[":authority"], "cmg.contoso.com");
    assert.equal(out[":path"], "/SMS_MP/.sms_pol?x");
    assert.equal(out["opencmg-role"], "1");
    assert.equal(out["x-opencmg-client-subject"], "CN=J%C3%BCrgen's PC, O=Contoso");
    assert.equal(out["x-opencmg-client-sans"], "DNS:pc.contoso.com, IP Address:10.0.0.5");
    assert.equal(out["x-forwarded-for"], "203.0.113.9");
    assert.equal(out.accept, "*/*");
    for (const gone of ["host", "connection", "x-a", "te"]) assert.equal(out[gone], undefined, gone);
  });

  it("builds client response headers without pseudo, hop-by-hop or tunnel-internal headers", () => {
    const upstream = { ":status": 207, "content-type": "text/xml", "opencmg-error": "x", "keep-alive": "5", "set-cookie": ["a=1", "b=2"] };
    const { status, headers } = clientResponseHeaders(upstream);
    assert.equal(status, 207);
    assert.deepEqual(headers, { "content-type": "text/xml", "set-cookie": ["a=1", "b=2"] });
  });
});

it("names a connection point by the FQDN in its tunnel certificate's CN, as it names itself", () => {
  assert.equal(connectionPointName("opencmg-cp:cp01.contoso.com"), "cp01.contoso.com");
  assert.equal(connectionPointName("cp01.contoso.com"), "cp01.contoso.com", "a certificate not issued by the site's naming: its CN as it is");
  assert.equal(connectionPointName("x-opencmg-cp:cp01"), "x-opencmg-cp:cp01");
});
