// Client authentication at the gateway, end to end: a real client presents (or not) a certificate
// to a real instance; every refusal names its reason in the response and in CMGHttpHandler.log.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../../test/helpers/cmg-harness.ts";
import type { CertKeyPem } from "../../pki/issue.ts";

describe("client authentication (mutual TLS)", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1 });
    await h.waitReady();
  });
  after(() => h.close());

  const path = () => `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`;

  async function expectRefusal(cert: CertKeyPem | null, reason: string, logCheck: RegExp): Promise<void> {
    for (const h2 of [false, true]) {
      const before = h.backend.requests.length;
      const r = await h.request(0, path(), { cert, h2 });
      assert.equal(r.status, 403, `${reason} over ${h2 ? "h2" : "http/1.1"}`);
      assert.equal(JSON.parse(r.body.toString()).error, reason);
      assert.equal(r.headers["x-opencmg-reason"], reason);
      assert.equal(h.backend.requests.length, before, "a refused request never reaches the site");
    }
    const lines = h.logLines("gw0", "CMGHttpHandler.log").filter((l) => l.text.includes(`refused with 403 ${reason}:`));
    assert.ok(lines.length >= 2, `log lines for ${reason}`);
    assert.match(lines.at(-1)!.text, logCheck);
    assert.equal(lines.at(-1)!.component, "CMGHttpHandler");
    assert.equal(lines.at(-1)!.type, 2);
  }

  it("accepts a valid client certificate over HTTP/1.1 and HTTP/2", async () => {
    for (const h2 of [false, true]) {
      const r = await h.request(0, path(), { cert: h.pki.client, h2 });
      assert.equal(r.status, 200);
      assert.equal(r.protocol, h2 ? "h2" : "http/1.1");
      const seen = JSON.parse(r.body.toString());
      assert.equal(seen.url, "/SMS_MP/.sms_aut?MPLIST");
      assert.equal(seen.headers["x-opencmg-client-thumbprint"], h.pki.client.thumbprint);
      assert.equal(seen.headers["x-opencmg-client-subject"], "CN=PC-001");
      assert.equal(seen.headers["x-opencmg-client-auth"], "mtls");
    }
  });

  it("fails closed on a certificate without a CRL distribution point while revocation checking is on", async () => {
    const r = await h.request(0, path(), { cert: h.pki.clientViaRoot2 });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body.toString()).error, "crl_unavailable");
  });

  it("refuses a request without a certificate: no_certificate", () => expectRefusal(null, "no_certificate", /client sent no certificate/));

  it("refuses a certificate of an untrusted root: untrusted_chain", () =>
    expectRefusal(h.pki.untrustedClient, "untrusted_chain", /certificate chain check.*no chain from "CN=PC-UNTRUSTED"/));

  it("refuses an expired certificate: expired", () => expectRefusal(h.pki.expiredClient, "expired", /validity check.*expired on/));

  it("refuses a certificate not yet valid: not_yet_valid", () => expectRefusal(h.pki.notYetValidClient, "not_yet_valid", /validity check.*valid from/));

  it("refuses a certificate without client authentication usage: wrong_usage", () =>
    expectRefusal(h.pki.wrongUsageClient, "wrong_usage", /usage check.*clientAuth/));

  it("refuses a revoked certificate, according to the CRL served on loopback: revoked", () =>
    expectRefusal(h.pki.revokedClient, "revoked", /revocation check: the certificate is revoked.*was revoked on/));

  it("fails closed when the CRL cannot be downloaded: crl_unavailable", async () => {
    const orphan = await h.issueClient({ commonName: "PC-NOCRL", crlUrl: `${h.crlServer.base}/missing.crl` });
    await expectRefusal(orphan, "crl_unavailable", /revocation check: no usable CRL.*missing\.crl/);
    // The finer cause reaches the client (header and body): the fix differs from a missing distribution point.
    const r = await h.request(0, path(), { cert: orphan });
    assert.equal(r.headers["x-opencmg-cause"], "crl_unreachable");
    assert.equal(JSON.parse(r.body.toString()).cause, "crl_unreachable");
    assert.doesNotMatch(r.body.toString(), /missing\.crl/, "the URL stays in the log");
  });

  it("refuses a certificate naming no CRL distribution point while checking is on: crl_unavailable, cause no_crl_distribution_point", async () => {
    const noCdp = await h.issueClient({ commonName: "PC-NOCDP" });
    await expectRefusal(noCdp, "crl_unavailable", /names no CRL distribution point/);
    const r = await h.request(0, path(), { cert: noCdp });
    assert.equal(r.headers["x-opencmg-cause"], "no_crl_distribution_point");
    assert.equal(JSON.parse(r.body.toString()).cause, "no_crl_distribution_point");
  });

  it("counts refusals by reason in the metrics", async () => {
    const text = await h.instances[0]!.metrics.registry.metrics();
    assert.match(text, /opencmg_gateway_auth_refusals_total\{reason="revoked",cmg_instance="cmg1-0"\} [1-9]/);
    assert.match(text, /opencmg_gateway_requests_total\{result="ok",cmg_instance="cmg1-0"\} [1-9]/);
  });
});

describe("client authentication with revocation checking off", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, crlCheck: false });
    await h.waitReady();
  });
  after(() => h.close());

  it("accepts a revoked certificate and downloads no CRL", async () => {
    const hits = h.crlServer.hits;
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.revokedClient });
    assert.equal(r.status, 200);
    assert.equal(h.crlServer.hits, hits);
  });

  it("accepts a certificate issued directly by the second trusted root", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.clientViaRoot2, h2: true });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).headers["x-opencmg-client-subject"], "CN=PC-ROOT2");
  });

  it("turns checking on when a connection point pushes new settings", async () => {
    h.settings.crlCheck = true;
    h.settings.revision = 2;
    h.connectionPoints[0]!.update({ settings: h.sign() });
    await until("revision 2 in force", () => h.instances[0]!.status().settingsRevision === 2);
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.revokedClient });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body.toString()).error, "revoked");
  });
});
