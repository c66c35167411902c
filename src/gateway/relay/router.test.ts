// Routing at the gateway, end to end through real instances, tunnels and connection points:
// which requests reach the site, which are answered at the gateway, and what the site sees.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../../test/helpers/cmg-harness.ts";
import { assertConventions, sampleValue, samples } from "../../../test/helpers/prometheus.ts";
import type { ClientAuthenticator } from "../auth/client-cert.ts";
import { topics } from "../../observe/channels.ts";

describe("routing (2 instances, 2 connection points)", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 2, connectionPoints: 2 });
    await h.waitReady();
  });
  after(() => h.close());

  it("relays to the management point through both instances, HTTP/1.1 and HTTP/2", async () => {
    for (const i of [0, 1]) {
      for (const h2 of [false, true]) {
        const r = await h.request(i, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client, h2 });
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).url, "/SMS_MP/.sms_aut?MPLIST");
      }
    }
  });

  it("leaves one CMGHttpHandler.log line per relayed request: method, path without the query, role, status, bytes both ways, ms, client, connection point", async () => {
    const r = await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_pol?secret=1`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 200);
    const line = new RegExp(
      `^GET /CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/\\.sms_pol role ${h.roles.mp} \\(mp\\): 200, in 0 bytes, out ${r.body.length} bytes, \\d+ ms, ` +
        `client CN=[^ ]+ thumbprint ${h.pki.client.thumbprint} from 127\\.0\\.0\\.1 via cp\\d\\.opencmg\\.test \\(request \\w+\\)$`,
    );
    // The line is written when the gateway's response finishes, which may come a moment after the client has it all.
    const lines = (): ReturnType<typeof h.logLines> => h.logLines("gw1", "CMGHttpHandler.log").filter((l) => l.text.includes(".sms_pol"));
    await until("the request line", () => lines().length > 0);
    assert.equal(lines().length, 1);
    assert.match(lines()[0]!.text, line);
    assert.equal(lines()[0]!.type, 1);
  });

  it("joins the path to the role's internal URL (software update point under /sup)", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/ClientWebService/client.asmx?x=1`, { cert: h.pki.client });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).url, "/sup/ClientWebService/client.asmx?x=1");
  });

  it("answers 404 at the gateway for an unknown role ID, and logs it", async () => {
    const before = h.backend.requests.length;
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/99999/SMS_MP/x`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body.toString()).error, "unknown_role");
    assert.equal(h.backend.requests.length, before);
    assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => /404, role 99999 is not in the URL map/.test(l.text)));
  });

  it("answers 403 at the gateway for a role that does not allow CMG traffic; nothing is sent on-premises", async () => {
    // Every request a connection point took from a tunnel, whatever its result (it would refuse this one itself).
    const handled = (): Promise<number[]> =>
      Promise.all(
        h.connectionPoints.map(async (cp) =>
          samples(await cp!.metrics.registry.getSingleMetricAsString("opencmg_connection_point_requests_total"))
            .filter((x) => x.name === "opencmg_connection_point_requests_total")
            .reduce((n, x) => n + x.value, 0),
        ),
      );
    const before = h.backend.requests.length;
    const handledBefore = await handled();
    // Before the request, as its precondition: every connection point could have been asked.
    assert.deepEqual(h.connectionPoints.map((cp) => cp!.health().instances.map((i) => i.connected)), [[2, 2], [2, 2]], "2 tunnels from each connection point to each instance");
    const r = await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.closed}/SMS_MP/x`, { cert: h.pki.client });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body.toString()).error, "role_not_allowed");
    assert.equal(h.backend.requests.length, before, "the backend saw nothing");
    assert.deepEqual(await handled(), handledBefore, "no connection point was asked either");
  });

  it("answers 404 for paths outside the proxy endpoints and for schemes without an authenticator", async () => {
    for (const p of ["/", "/SMS_MP/.sms_aut?MPLIST", `/CCM_Proxy_OtherAuth/${h.roles.mp}/SMS_MP/x`]) {
      const r = await h.request(0, p, { cert: h.pki.client });
      assert.equal(r.status, 404, p);
    }
    // The token scheme has its authenticator: a certificate there counts for nothing.
    const r = await h.request(0, `/CCM_Proxy_ServerAuth/${h.roles.mp}/SMS_MP/x`, { cert: h.pki.client });
    assert.equal(r.status, 401);
  });

  it("strips identity headers the client forged and hop-by-hop headers, and adds the authenticated identity", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/echo`, {
      cert: h.pki.client,
      headers: {
        "x-opencmg-client-thumbprint": "0000000000000000000000000000000000000000",
        "x-opencmg-client-subject": "CN=Administrator",
        "x-opencmg-client-sans": "DNS:dc01.contoso.com",
        "x-opencmg-client-auth": "token",
        "opencmg-role": h.roles.closed,
        "x-forwarded-for": "203.0.113.7",
        forwarded: "for=203.0.113.7",
        connection: "keep-alive, x-drop-me",
        "x-drop-me": "1",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "x-keep-me": "yes",
      },
    });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body.toString()).headers as Record<string, string>;
    assert.equal(seen["x-opencmg-client-thumbprint"], h.pki.client.thumbprint);
    assert.equal(seen["x-opencmg-client-subject"], "CN=PC-001");
    assert.equal(seen["x-opencmg-client-sans"], "");
    assert.equal(seen["x-opencmg-client-auth"], "mtls");
    assert.equal(seen["x-forwarded-for"], "127.0.0.1");
    assert.equal(seen["forwarded"], undefined);
    assert.equal(seen["x-drop-me"], undefined);
    assert.equal(seen["proxy-authorization"], undefined);
    assert.equal(seen["opencmg-role"], undefined);
    assert.equal(seen["x-keep-me"], "yes");
    assert.equal(JSON.parse(r.body.toString()).url, "/echo", "routed by the URL, not by a header");
  });

  it("does not relay hop-by-hop response headers to the client", async () => {
    // The backend answers with Connection: keep-alive and Keep-Alive: timeout=5.
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/echo`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers["keep-alive"], undefined);
    assert.equal(r.headers["connection"], undefined);
    assert.equal(r.headers["content-type"], "application/json");
  });

  it("relays request bodies (small, replayable; and larger than the replay buffer)", async () => {
    for (const size of [1000, 300_000]) {
      for (const h2 of [false, true]) {
        const r = await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.mp}/upload`, { cert: h.pki.client, method: "POST", body: Buffer.alloc(size, 1), h2 });
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).bodyBytes, size);
      }
    }
  });

  it("relays HEAD: headers without a body", async () => {
    for (const h2 of [false, true]) {
      const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/bytes/1000`, { cert: h.pki.client, method: "HEAD", h2 });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-length"], "1000");
      assert.equal(r.body.length, 0);
    }
  });

  it("answers 413 for a body over the endpoint's limit, declared or streamed", async () => {
    const before = h.backend.requests.length;
    // Software update points take at most 1 MiB by default.
    const big = Buffer.alloc(2 * 1024 * 1024, 2);
    const declared = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/upload`, { cert: h.pki.client, method: "POST", body: big });
    assert.equal(declared.status, 413);
    assert.equal(JSON.parse(declared.body.toString()).error, "body_too_large");
    assert.equal(h.backend.requests.length, before, "refused before anything went on-premises");
    // HTTP/2 without content-length: the limit is enforced as the body streams. The answer comes
    // while the body is still on its way (the stream is reset after it), so its headers are read.
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });
    session.on("error", () => {});
    try {
      const stream = session.request({ ":method": "POST", ":path": `/CCM_Proxy_MutualAuth/${h.roles.sup}/upload-streamed` });
      stream.on("error", () => {});
      const answer = new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.on("response", resolve);
        stream.on("close", () => reject(new Error(`the stream closed without a response (code ${stream.rstCode})`)));
      });
      stream.end(big);
      const streamed = await answer;
      assert.equal(streamed[":status"], 413);
      assert.equal(streamed["x-opencmg-reason"], "body_too_large");
    } finally {
      session.destroy();
    }
  });

  it("spreads requests across both connection points", async () => {
    await Promise.all(Array.from({ length: 40 }, (_, k) => h.request(k % 2, `/CCM_Proxy_MutualAuth/${h.roles.mp}/spread`, { cert: h.pki.client, h2: true })));
    for (const cp of h.connectionPoints) {
      const text = await cp!.metrics.registry.getSingleMetricAsString("opencmg_connection_point_requests_total");
      const ok = Number(/result="ok"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
      assert.ok(ok > 0, `connection point relayed requests: ${text}`);
    }
  });

  it("serves Prometheus metrics and health on the instance's local metrics port", async () => {
    const port = h.instances[0]!.metricsPort!;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const name of [
      "opencmg_gateway_client_connections",
      "opencmg_gateway_requests_total",
      "opencmg_gateway_body_bytes_total",
      "opencmg_gateway_tunnel_sessions",
      "opencmg_gateway_tls_handshake_failures_total",
    ]) {
      assert.match(text, new RegExp(`^${name}`, "m"));
    }
    assert.match(text, /opencmg_gateway_tunnel_sessions\{connection_point="cp1.opencmg.test",cmg_instance="cmg1-0"\} 2/);
    // Requests relayed by the tests above, timed by role kind and result.
    assert.ok((sampleValue(text, "opencmg_gateway_request_duration_seconds_count", { role_kind: "mp", result: "ok", cmg_instance: "cmg1-0" }) ?? 0) > 0, text);
    assert.equal(samples(text).find((x) => x.name === "opencmg_build_info")?.labels.cmg_instance, "cmg1-0");
    assert.match(text, /^process_cpu_seconds_total\{cmg_instance="cmg1-0"\} /m);
    assertConventions(text, "cmg_instance");
    // The connection point's metrics: its own name, the same label the gateway gives it.
    const cp = h.connectionPoints[0]!;
    const cpText = await (await fetch(`http://127.0.0.1:${cp.metricsPort}/metrics`)).text();
    assert.ok((sampleValue(cpText, "opencmg_connection_point_request_duration_seconds_count", { role_kind: "mp", result: "ok", connection_point: "cp1.opencmg.test" }) ?? 0) > 0, cpText);
    assert.equal(sampleValue(cpText, "opencmg_connection_point_tunnels", { gateway: `127.0.0.1:${h.instances[0]!.tunnelPort}`, connection_point: "cp1.opencmg.test" }), 2);
    assertConventions(cpText, "connection_point");
    assert.doesNotMatch(cpText, /connector/);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ready: boolean }).ready, true);
  });
});

describe("routing without connection points", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1 });
    await h.waitReady();
    await h.stopConnectionPoint(0);
  });
  after(() => h.close());

  it("answers 503 with Retry-After while no connection point has configured the instance", async () => {
    const fresh = await startCmgHarness({ instances: 1, connectionPoints: 0 });
    try {
      const r = await fresh.request(0, `/CCM_Proxy_MutualAuth/${fresh.roles.mp}/x`, { cert: fresh.pki.client });
      assert.equal(r.status, 503);
      assert.equal(r.headers["retry-after"], "10");
      assert.equal(JSON.parse(r.body.toString()).error, "not_configured");
    } finally {
      await fresh.close();
    }
  });

  it("answers 503 with Retry-After when the connection points are gone (settings kept)", async () => {
    await until("the instance to see its tunnels go", () => !h.instances[0]!.status().ready);
    for (const h2 of [false, true]) {
      const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client, h2 });
      assert.equal(r.status, 503);
      assert.equal(r.headers["retry-after"], "10");
      assert.equal(JSON.parse(r.body.toString()).error, "no_connection_point");
    }
    assert.equal(h.instances[0]!.status().settingsRevision, 1);
  });

  it("serves again once a connection point is back", async () => {
    await h.startConnectionPoint(0);
    await h.waitReady();
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client });
    assert.equal(r.status, 200);
  });
});

describe("another client authenticator plugs in without routing changes", () => {
  // A stand-in for site-issued tokens on CCM_Proxy_ServerAuth: the router only sees the interface.
  const tokens: ClientAuthenticator = {
    method: "token",
    async authenticate(req) {
      const auth = req.headers.authorization;
      if (auth === "Bearer good-token") return { ok: true, identity: { method: "token", thumbprint: "", subject: "CN=PC-TOKEN", sans: [] } };
      return { ok: false, status: 401, reason: "invalid_token", check: "token check: no valid site-issued token", detail: `authorization ${auth ? "present" : "absent"}`, headers: { "www-authenticate": "Bearer" } };
    },
  };
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, authenticators: { CCM_Proxy_ServerAuth: tokens } });
    await h.waitReady();
  });
  after(() => h.close());

  it("routes token requests like certificate requests, with the token identity", async () => {
    const ok = await h.request(0, `/CCM_Proxy_ServerAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { headers: { authorization: "Bearer good-token" } });
    assert.equal(ok.status, 200);
    const seen = JSON.parse(ok.body.toString());
    assert.equal(seen.url, "/SMS_MP/.sms_aut?MPLIST");
    assert.equal(seen.headers["x-opencmg-client-auth"], "token");
    assert.equal(seen.headers["x-opencmg-client-subject"], "CN=PC-TOKEN");

    const refused = await h.request(0, `/CCM_Proxy_ServerAuth/${h.roles.mp}/x`, { h2: true });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["www-authenticate"], "Bearer");
    assert.equal(JSON.parse(refused.body.toString()).error, "invalid_token");
    assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => /refused with 401 invalid_token: token check/.test(l.text)));
  });
});

describe("observers of an instance and a connection point", () => {
  it("subscribe while they run and leave no subscription behind once stopped", async () => {
    const h = await startCmgHarness({ instances: 1, connectionPoints: 1 });
    try {
      await h.waitReady();
      assert.ok(topics.gatewayRequest.active && topics.tunnelState.active && topics.connectionPointHealth.active);
    } finally {
      await h.close();
    }
    for (const t of Object.values(topics)) assert.equal(t.active, false, `${t.name} still has subscribers`);
  });
});

describe("verbose traffic log (traceQuery)", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, limits: { traceQuery: true } });
    await h.waitReady();
  });
  after(() => h.close());

  it("adds the query string to the request line", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client });
    assert.equal(r.status, 200);
    const lines = () => h.logLines("gw0", "CMGHttpHandler.log").filter((l) => l.text.includes(".sms_aut"));
    await until("the request line", () => lines().length > 0);
    assert.match(lines()[0]!.text, new RegExp(`^GET /CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/\\.sms_aut\\?MPLIST role ${h.roles.mp} \\(mp\\): 200`));
  });
});
