// The mapping table of errors.ts for answers the test Squid (5.7) cannot give: newer Squids,
// other proxies, other Node errors. The end-to-end cases run in egress-*.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NetError } from "../errors.ts";
import { ProxyAnswerError, classifyNetError, fromProxyAnswer, tagHop, toNetError, type NetErrorContext } from "./errors.ts";

const ctx: NetErrorContext = { route: { mode: "proxy", host: "proxy.contoso.com", port: 3128 }, targetHost: "go.microsoft.com" };
const direct: NetErrorContext = { route: { mode: "direct" }, targetHost: "go.microsoft.com" };

function answer(status: number, squid: string | undefined, via: "connect" | "forward"): [number, string, string] | undefined {
  const e = fromProxyAnswer(new ProxyAnswerError(status, squid, via), ctx);
  return e && [e.code, e.hop, e.host];
}

describe("proxy answers", () => {
  it("Squid error pages map to the code of what failed", () => {
    assert.deepEqual(answer(503, "ERR_DNS_FAIL 0", "forward"), [12007, "target", "go.microsoft.com"]); // Squid >= 6.3
    assert.deepEqual(answer(500, "ERR_CANNOT_FORWARD 0", "connect"), [12007, "target", "go.microsoft.com"]); // Squid 5 (bug 5294)
    assert.deepEqual(answer(502, "ERR_READ_ERROR 0", "forward"), [12007, "target", "go.microsoft.com"]); // Squid 5 (bug 5294)
    assert.deepEqual(answer(502, "ERR_READ_ERROR 104", "forward"), [12030, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(503, "ERR_CONNECT_FAIL 111", "connect"), [12029, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(503, "ERR_CONNECT_FAIL 110", "connect"), [12002, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(504, "ERR_READ_TIMEOUT 0", "forward"), [12002, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(502, "ERR_ZERO_SIZE_OBJECT 0", "forward"), [12030, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(503, "ERR_SECURE_CONNECT_FAIL 0", "forward"), [12175, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(403, "ERR_ACCESS_DENIED 0", "connect"), [12029, "proxy", "proxy.contoso.com:3128"]);
    assert.deepEqual(answer(407, "ERR_CACHE_ACCESS_DENIED 0", "forward"), [407, "proxy", "proxy.contoso.com:3128"]);
  });

  it("other proxies: the CONNECT status decides; a forwarded answer without Squid's mark is the target's", () => {
    assert.deepEqual(answer(407, undefined, "connect"), [407, "proxy", "proxy.contoso.com:3128"]);
    assert.deepEqual(answer(502, undefined, "connect"), [12029, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(504, undefined, "connect"), [12002, "target", "go.microsoft.com"]);
    assert.deepEqual(answer(403, undefined, "connect"), [12029, "proxy", "proxy.contoso.com:3128"]);
    assert.equal(answer(502, undefined, "forward"), undefined);
  });

  it("a denial says to check the proxy's rules", () => {
    const e = fromProxyAnswer(new ProxyAnswerError(403, "ERR_ACCESS_DENIED 0", "connect"), ctx)!;
    assert.match(e.message, /proxy proxy\.contoso\.com:3128 refused to connect to go\.microsoft\.com .*check that the proxy's rules allow this endpoint/);
  });
});

describe("Node and undici errors", () => {
  const err = (code: string, message = code): Error => Object.assign(new Error(message), { code });

  it("Happy Eyeballs failures (AggregateError) are read through", () => {
    const agg = Object.assign(new AggregateError([err("ECONNREFUSED"), err("ECONNREFUSED")], "connect"), { code: "ECONNREFUSED" });
    const e = toNetError(agg, direct);
    assert.deepEqual([e.code, e.hop, e.host], [12029, "target", "go.microsoft.com"]);
  });

  it("the hop a connector tagged wins over the default", () => {
    assert.equal(toNetError(tagHop(err("ETIMEDOUT"), "proxy"), ctx).hop, "proxy");
    assert.equal(toNetError(err("ETIMEDOUT"), ctx).hop, "target");
  });

  it("an AbortSignal.timeout() reason is a timeout", () => {
    const reason = new DOMException("The operation was aborted due to timeout", "TimeoutError");
    assert.equal(toNetError(reason, direct).code, 12002);
  });

  it("a certificate error from OpenSSL is 12175", () => {
    assert.equal(toNetError(err("CERT_HAS_EXPIRED", "certificate has expired"), direct).code, 12175);
    assert.equal(toNetError(err("ERR_SSL_WRONG_VERSION_NUMBER"), ctx).hop, "target");
  });

  it("what is not a network failure is left to the caller by classifyNetError", () => {
    assert.equal(classifyNetError(new TypeError("bad"), direct), undefined);
    assert.equal(classifyNetError(err("UND_ERR_ABORTED", "Request aborted"), direct), undefined);
    const fallback = toNetError(new TypeError("bad"), ctx);
    assert.ok(fallback instanceof NetError);
    assert.equal(fallback.code, 12029);
    assert.match(fallback.message, /unexpected failure: bad/);
  });

  it("a NetError passes through unchanged", () => {
    const ne = new NetError(12030, "target", "x", "m");
    assert.equal(toNetError(ne, ctx), ne);
  });
});
