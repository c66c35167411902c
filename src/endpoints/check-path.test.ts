import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ValidationError } from "../errors.ts";
import { nullLog } from "../logs/cmtrace.ts";
import { checkPath, parseProxyUrl } from "./check-path.ts";

const field = (name: string) => (e: unknown) => e instanceof ValidationError && e.field === name;

describe("a check's outbound path", () => {
  it("parses an ad-hoc proxy URL, port 80 by default, the account decoded", () => {
    assert.deepEqual(parseProxyUrl("proxy", "http://proxy.contoso.com"), { mode: "proxy", host: "proxy.contoso.com", port: 80 });
    assert.deepEqual(parseProxyUrl("proxy", "http://CONTOSO%5Csvc:p%40ss@10.0.0.1:8080/"), { mode: "proxy", host: "10.0.0.1", port: 8080, credentials: { username: "CONTOSO\\svc", password: "p@ss" } });
    assert.deepEqual(parseProxyUrl("proxy", "http://[::1]:3128"), { mode: "proxy", host: "::1", port: 3128 });
    for (const bad of ["proxy.contoso.com:8080", "https://proxy:443", "http://proxy:8080/path", "http://:pw@proxy:8080"]) assert.throws(() => parseProxyUrl("proxy", bad), field("proxy"), bad);
  });

  it("without a site: --proxy, else $HTTPS_PROXY, else direct; --server needs a site", async () => {
    const base = { log: nullLog, connectTimeoutMs: 1000 };
    const cases: [Parameters<typeof checkPath>[0], RegExp][] = [
      [{ ...base, proxy: "http://u:pw@127.0.0.1:3128", env: { HTTPS_PROXY: "http://127.0.0.1:9" } }, /^proxy 127\.0\.0\.1:3128 as u \(--proxy\)$/],
      [{ ...base, env: { https_proxy: "http://[::1]:3128" } }, /^proxy \[::1\]:3128 without an account \(\$HTTPS_PROXY/],
      [{ ...base, env: {} }, /^a direct connection \(no site/],
    ];
    for (const [o, describe] of cases) {
      const path = await checkPath(o);
      try {
        assert.match(path.describe, describe);
        assert.deepEqual(path.ca, []);
      } finally {
        await path.close();
      }
    }
    await assert.rejects(checkPath({ ...base, server: "scp01.contoso.com" }), field("server"));
    await assert.rejects(checkPath({ ...base, server: "scp01.contoso.com", proxy: "http://127.0.0.1:3128" }), field("server"));
    await assert.rejects(checkPath({ ...base, proxy: "ftp://127.0.0.1:21" }), field("proxy"));
  });
});
