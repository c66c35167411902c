// The connection point dials its instances through the server's proxy: a real Squid with Basic
// authentication, reached with Egress.connect (CONNECT tunnels), end to end to the backend.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, type CmgHarness } from "../../helpers/cmg-harness.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { Egress } from "../../../src/egress/egress.ts";
import { nullLog } from "../../../src/logs/cmtrace.ts";
import { startConnectionPoint } from "../../../src/connection-point/connection-point.ts";
import { until } from "../../helpers/until.ts";

const account = { username: "cmgproxy", password: "Pr0xy-s3cret" };

describe("connection point through Squid with Basic authentication", () => {
  let squid: TestSquid;
  let h: CmgHarness;
  const egresses: Egress[] = [];
  const egress = (credentials = account): Egress => {
    const e = new Egress({ mode: "proxy", host: "127.0.0.1", port: squid.port, credentials }, { connectTimeoutMs: 5000 });
    egresses.push(e);
    return e;
  };

  before(async () => {
    squid = await startSquid({ auth: account });
    h = await startCmgHarness({
      instances: 2,
      connectionPoints: 2,
      // Connection point 1 goes through the proxy, connection point 2 directly.
      dial: (j) => (j === 0 ? (host, port) => egress().connect(host, port) : undefined),
    });
    await h.waitReady();
  });
  after(async () => {
    await h?.close();
    for (const e of egresses) await e.close();
    await squid?.stop();
  });

  it("carries client requests end to end through the proxied tunnels (HTTP/1.1 and HTTP/2)", async () => {
    // Connection point 2 leaves: everything must go through the proxied one.
    await h.stopConnectionPoint(1);
    for (const i of [0, 1]) {
      for (const h2 of [false, true]) {
        const r = await h.request(i, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client, h2 });
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).headers["x-opencmg-client-thumbprint"], h.pki.client.thumbprint);
      }
    }
    const big = await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.sup}/bytes/${8 * 1024 * 1024}`, { cert: h.pki.client, h2: true });
    assert.equal(big.body.length, 8 * 1024 * 1024);
    await h.startConnectionPoint(1);
    await h.waitReady();
  });

  it("opened one authenticated CONNECT per tunnel, to every instance", async () => {
    // CONNECT lines are written when the tunnel closes: close them, then read the log.
    await h.stopConnectionPoint(0);
    let entries = await squid.accessEntries();
    for (let k = 0; k < 100 && entries.filter((e) => e.method === "CONNECT").length < 4; k++) {
      await new Promise((r) => setTimeout(r, 50));
      entries = await squid.accessEntries();
    }
    const connects = entries.filter((e) => e.method === "CONNECT" && e.status === 200);
    for (const p of h.ports) {
      const mine = connects.filter((e) => e.url === `127.0.0.1:${p.tunnel}`);
      assert.ok(mine.length >= 2, `2 tunnels to instance at ${p.tunnel}: ${JSON.stringify(connects.map((e) => e.url))}`);
      assert.ok(mine.every((e) => e.user === account.username));
    }
    await h.startConnectionPoint(0);
    await h.waitReady();
  });

  it("reports 407 in its health when the proxy account is wrong", async () => {
    const bad = egress({ username: account.username, password: "wrong" });
    const cp = await startConnectionPoint({
      name: "cp-badpass",
      instances: [{ host: "127.0.0.1", port: h.ports[0]!.tunnel }],
      dial: (host, port) => bad.connect(host, port),
      tls: { certPem: h.tunnelCerts[0]!.certPem, keyPem: h.tunnelCerts[0]!.keyPem, siteCaPem: h.pki.siteCa.certPem },
      settings: h.sign(),
      backends: {},
      log: { connector: nullLog, service: nullLog },
      reconnect: { minDelayMs: 50, maxDelayMs: 200 },
    });
    try {
      await until("a dial failure", () => cp.health().instances[0]!.lastError !== null);
      const e = cp.health().instances[0]!.lastError!;
      assert.equal(e.code, 407, e.message);
      assert.match(e.message, /rejected the proxy account cmgproxy/);
      assert.equal(cp.health().status, "critical");
    } finally {
      await cp.stop();
    }
  });
});
