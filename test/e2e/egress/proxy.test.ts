// What only a proxy route has: authentication (407), the proxy itself down or unresolvable, the
// request forms Squid sees (absolute form for http:, CONNECT for https:), no Proxy-Authorization
// without an account, and no environment variable taking over.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { NetError, ValidationError } from "../../../src/errors.ts";
import { refusingPort, serveBytes } from "../../helpers/internet.ts";
import { startSquid } from "../../helpers/squid.ts";
import { PROXY_ACCOUNT, setUp, type Fixture } from "./egress.cases.ts";
import { Egress, basicAuthorization } from "../../../src/egress/egress.ts";
import type { EgressRoute } from "../../../src/egress/route.ts";

async function failure(p: Promise<unknown>): Promise<NetError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NetError, String(e));
    return e;
  }
  assert.fail("expected a NetError");
}

describe("proxy with Basic authentication", () => {
  let f: Fixture;
  const body = randomBytes(64 * 1024);
  before(async () => {
    f = await setUp("proxy+auth");
    f.internet.route("/kb/update.cab", serveBytes(body));
  });
  after(() => f?.close());

  it("sends the proxy account as Basic Proxy-Authorization (absolute form for http:, CONNECT for https:)", async () => {
    const e = f.egress();
    for (const scheme of ["http", "https"] as const) {
      const res = await e.request(f.internet.url(scheme, "/kb/update.cab"));
      assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), body);
    }
    await e.close();
    const entries = (await f.squid!.waitForEntries((xs) => xs.some((x) => x.method === "CONNECT"))).filter((x) => x.method !== "-");
    const get = entries.find((x) => x.method === "GET")!;
    assert.equal(get.url, f.internet.url("http", "/kb/update.cab"), "absolute form: the full URL reached the proxy");
    assert.equal(get.status, 200);
    const connect = entries.find((x) => x.method === "CONNECT")!;
    assert.equal(connect.url, `download.windowsupdate.com:${f.internet.httpsPort}`);
    assert.equal(connect.result, "TCP_TUNNEL");
    assert.ok(!entries.some((x) => x.url.startsWith("https:")), "https never goes in absolute form");
    for (const x of [get, connect]) {
      assert.equal(x.user, PROXY_ACCOUNT.username);
      assert.equal(x.proxyAuthorization, basicAuthorization(PROXY_ACCOUNT));
    }
  });

  for (const scheme of ["http", "https"] as const) {
    it(`${scheme}: a wrong password -> 407 at the proxy, nothing downloaded, logged`, async () => {
      const route: EgressRoute = { mode: "proxy", host: f.squid!.host, port: f.squid!.port, credentials: { username: PROXY_ACCOUNT.username, password: "wrong" } };
      const e = new Egress(route, { log: f.log, ca: [f.internet.ca.certPem] });
      const before = f.internet.requests().length;
      const mark = f.lines().length;
      const err = await failure(e.request(f.internet.url(scheme, "/kb/update.cab")));
      assert.equal(err.code, 407);
      assert.equal(err.hop, "proxy");
      assert.equal(err.host, `127.0.0.1:${f.squid!.port}`);
      assert.match(err.message, /rejected the proxy account svc-proxy \(407\): check the account's user name and password/);
      assert.equal(f.internet.requests().length, before, "the target saw nothing");
      const failed = f.lines(mark).filter((l) => l.type === 3);
      assert.equal(failed.length, 1);
      assert.match(failed[0]!.text, /error 407 at the proxy: proxy 127\.0\.0\.1:\d+ rejected/);
      assert.ok(!f.rawLog().includes("wrong"), "the password is not logged");
      await e.close();
    });
  }

  it("connect(): a wrong password -> 407 at the proxy", async () => {
    const e = new Egress({ mode: "proxy", host: f.squid!.host, port: f.squid!.port, credentials: { username: "nobody", password: "x" } });
    const err = await failure(e.connect("download.windowsupdate.com", f.internet.echoPort));
    assert.equal(err.code, 407);
    assert.equal(err.hop, "proxy");
    await e.close();
  });

  it("no proxy account on a proxy that wants one -> 407 saying to set one", async () => {
    const e = new Egress({ mode: "proxy", host: f.squid!.host, port: f.squid!.port }, { ca: [f.internet.ca.certPem] });
    for (const scheme of ["http", "https"] as const) {
      const err = await failure(e.request(f.internet.url(scheme, "/kb/update.cab")));
      assert.equal(err.code, 407);
      assert.match(err.message, /requires authentication \(407\): set a proxy account/);
    }
    await e.close();
  });
});

describe("proxy without authentication", () => {
  let f: Fixture;
  before(async () => {
    f = await setUp("proxy");
    f.internet.route("/x", serveBytes(Buffer.from("hello")));
  });
  after(() => f?.close());

  it("sends no Proxy-Authorization when the route has no proxy account", async () => {
    const e = f.egress();
    for (const scheme of ["http", "https"] as const) assert.equal(await (await e.request(f.internet.url(scheme, "/x"))).body.text(), "hello");
    const socket = await e.connect("download.windowsupdate.com", f.internet.echoPort);
    socket.destroy();
    await e.close();
    const entries = (await f.squid!.waitForEntries((xs) => xs.filter((x) => x.method === "CONNECT").length === 2)).filter((x) => x.method !== "-");
    assert.deepEqual(entries.map((x) => x.method).sort(), ["CONNECT", "CONNECT", "GET"]);
    for (const x of entries) {
      assert.equal(x.proxyAuthorization, "", `${x.method} ${x.url} carried a Proxy-Authorization`);
      assert.equal(x.user, "-");
    }
  });

  it("ignores HTTP_PROXY / HTTPS_PROXY: the route decides", async () => {
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, HTTPS_PROXY: process.env.HTTPS_PROXY, http_proxy: process.env.http_proxy, https_proxy: process.env.https_proxy };
    const dead = `http://127.0.0.1:${await refusingPort()}`;
    for (const k of Object.keys(saved)) process.env[k] = dead;
    try {
      const viaProxy = f.egress();
      const direct = new Egress({ mode: "direct" }, { ca: [f.internet.ca.certPem], lookup: f.internet.lookup });
      const before = (await f.squid!.accessEntries()).length;
      for (const scheme of ["http", "https"] as const) {
        assert.equal(await (await viaProxy.request(f.internet.url(scheme, "/x"))).body.text(), "hello");
        assert.equal(await (await direct.request(f.internet.url(scheme, "/x"))).body.text(), "hello");
      }
      await Promise.all([viaProxy.close(), direct.close()]);
      const seen = (await f.squid!.waitForEntries((xs) => xs.slice(before).some((x) => x.method === "CONNECT"))).slice(before);
      assert.deepEqual(seen.map((x) => x.method).sort(), ["CONNECT", "GET"], "the proxy route went through the configured Squid, the direct one did not");
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe("proxy down or unknown", () => {
  let f: Fixture;
  before(async () => {
    f = await setUp("direct"); // only the internet; the proxies are made below
    f.internet.route("/x", serveBytes(Buffer.from("hello")));
  });
  after(() => f?.close());

  it("a stopped proxy -> 12029 at the proxy, naming it and what to check", async () => {
    const squid = await startSquid({ hosts: f.internet.hosts() });
    const route: EgressRoute = { mode: "proxy", host: squid.host, port: squid.port };
    const up = new Egress(route, { ca: [f.internet.ca.certPem] });
    assert.equal(await (await up.request(f.internet.url("http", "/x"))).body.text(), "hello");
    await up.close();
    await squid.stop();
    const e = new Egress(route, { log: f.log, ca: [f.internet.ca.certPem] });
    for (const p of [e.request(f.internet.url("http", "/x")), e.request(f.internet.url("https", "/x")), e.connect("download.windowsupdate.com", 443)]) {
      const err = await failure(p);
      assert.equal(err.code, 12029);
      assert.equal(err.hop, "proxy");
      assert.equal(err.host, `127.0.0.1:${squid.port}`);
      assert.equal(
        err.message,
        `proxy 127.0.0.1:${squid.port} refused the connection (ECONNREFUSED): check that the proxy service is running and the port in the server's proxy configuration`,
      );
    }
    assert.equal(f.lines().filter((l) => l.type === 3 && l.text.includes("error 12029 at the proxy")).length, 3);
    await e.close();
  });

  it("a proxy name that does not resolve -> 12007 at the proxy", async () => {
    const e = new Egress({ mode: "proxy", host: "proxy.contoso.invalid", port: 8080 }, { lookup: f.internet.lookup });
    const err = await failure(e.request(f.internet.url("https", "/x")));
    assert.equal(err.code, 12007);
    assert.equal(err.hop, "proxy");
    assert.equal(err.host, "proxy.contoso.invalid:8080");
    assert.match(err.message, /check the proxy server name in the server's proxy configuration/);
    await e.close();
  });

  it("refuses a route it cannot use, naming the setting", () => {
    assert.throws(() => new Egress({ mode: "proxy", host: "proxy", port: 0 }), (e) => e instanceof ValidationError && e.field === "proxy.port");
    assert.throws(() => new Egress({ mode: "proxy", host: "", port: 80 }), (e) => e instanceof ValidationError && e.field === "proxy.host");
    assert.throws(
      () => new Egress({ mode: "proxy", host: "proxy", port: 80, credentials: { username: "a:b", password: "x" } }),
      (e) => e instanceof ValidationError && e.field === "proxy.credentials.username",
    );
  });
});
