/**
 * The checker against real parts: a real Squid whose hosts_file points catalog names at loopback
 * stand-ins (reachable with the test CA, refusing, hanging, wrong certificate name, untrusted CA),
 * names nobody resolves, and the direct route with a loopback-only resolver.
 */
import assert from "node:assert/strict";
import { createServer, type LookupFunction, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { Egress } from "../../../src/egress/egress.ts";
import type { EgressRoute } from "../../../src/egress/route.ts";
import { startInternet, refusingPort, type Internet } from "../../helpers/internet.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { checkEndpoints, checkTargets, isRequiredOk, onPort, summaryLine, type CheckResult, type CheckTarget } from "../../../src/endpoints/checker.ts";

const REACHABLE = ["go.microsoft.com", "aka.ms", "download.windowsupdate.com", "graph.windows.net"];
const REFUSING = "download.microsoft.com";
const UNRESOLVABLE = "sccmconnected-a01.cloudapp.net"; // in no hosts file: the proxy cannot resolve it
const INVALID = "opencmg-check.invalid";
const WRONG_NAME = "configmgrbits.azureedge.net"; // served the stand-in's certificate, which does not name it
const UNTRUSTED = "dl.delivery.mp.microsoft.com"; // certificate from a CA nobody trusts
const HANGS = "manage.microsoft.com"; // accepts TCP, never answers
const WARNS = "graph.windows.net"; // answers HEAD with 404
const STAGE_MS = 3000; // above Squid's 1 s DNS timeout (plus a retransmit): an unknown name must come back as 12007, not as our timeout
const AUTH = { username: "scp-proxy", password: "Pa55-word" };

interface Expected {
  result: CheckResult["result"];
  stage: CheckResult["stage"];
  code: number | null;
}

let internet: Internet;
let hangServer: Server;
let hangPort: number;
let refused: number;
const hangSockets = new Set<Socket>();
let hangAccepted = 0;
/** Connections on which the hanging server received bytes (a TLS ClientHello: the tls stage began). */
let hangGreeted = 0;
let squid: TestSquid;
let authSquid: TestSquid;
let targets: CheckTarget[];

/** name -> 127.0.0.1 for every name but the unresolvable ones. */
function hostsFile(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of [...REACHABLE, REFUSING, WRONG_NAME, UNTRUSTED, HANGS]) out[n] = "127.0.0.1";
  return out;
}

const loopbackLookup: LookupFunction = ((hostname: string, options: unknown, callback: unknown) => {
  const cb = (typeof options === "function" ? options : callback) as (...a: unknown[]) => void;
  const all = typeof options === "object" && options !== null && (options as { all?: boolean }).all;
  const address = hostname === "127.0.0.1" ? hostname : hostsFile()[hostname.toLowerCase()];
  process.nextTick(() => {
    if (!address) cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", hostname }));
    else if (all) cb(null, [{ address, family: 4 }]);
    else cb(null, address, 4);
  });
}) as LookupFunction;

/** The catalog's targets for the service connection point, moved to the ports where their stand-ins listen. */
function buildTargets(): CheckTarget[] {
  const sel = selectEndpoints({ roles: ["service-connection-point"], cloud: "public" });
  const out: CheckTarget[] = [];
  for (const t of checkTargets(sel)) {
    if (t.host === WRONG_NAME || t.host === UNTRUSTED || t.host === HANGS) {
      if (t.scheme !== "https") continue; // their http: twins would just pass
      out.push(onPort(t, t.host === HANGS ? hangPort : internet.httpsPort));
    } else if (t.host === REFUSING) out.push(onPort(t, refused));
    else if (t.untestable || t.host === UNRESOLVABLE) out.push(t);
    else if (REACHABLE.includes(t.host)) out.push(onPort(t, t.scheme === "https" ? internet.httpsPort : internet.httpPort));
  }
  out.push({ url: `https://${INVALID}/`, scheme: "https", host: INVALID, port: 443, path: "/", endpointIds: ["test/invalid"], address: INVALID, required: true });
  return out;
}

function expected(t: CheckTarget): Expected {
  if (t.untestable) return { result: "not-testable", stage: null, code: null };
  if (t.host === REFUSING) return { result: "fail", stage: "connect", code: 12029 };
  if (t.host === UNRESOLVABLE || t.host === INVALID) return { result: "fail", stage: "dns", code: 12007 };
  if (t.host === WRONG_NAME || t.host === UNTRUSTED) return { result: "fail", stage: "tls", code: 12175 };
  if (t.host === HANGS) return { result: "fail", stage: "tls", code: 12002 };
  if (t.host === WARNS) return { result: "warn", stage: "http", code: null };
  return { result: "pass", stage: "http", code: null };
}

async function run(route: EgressRoute, opts: { concurrency?: number } = {}) {
  const egress = new Egress(route, { lookup: loopbackLookup, connectTimeoutMs: STAGE_MS });
  try {
    return await checkEndpoints(targets, { egress, ca: [internet.ca.certPem], lookup: loopbackLookup, stageTimeoutMs: STAGE_MS, ...opts });
  } finally {
    await egress.close();
  }
}

function assertResults(results: CheckResult[], override?: (t: CheckTarget) => Expected | undefined): void {
  assert.equal(results.length, targets.length);
  targets.forEach((t, i) => {
    const r = results[i]!;
    const want = override?.(t) ?? expected(t);
    assert.equal(r.url, t.url);
    assert.deepEqual({ result: r.result, stage: r.stage, code: r.code }, want, `${t.url}: ${r.message}`);
    assert.equal(typeof r.ms, "number");
    if (r.result === "pass") assert.ok(r.stages.every((s) => s.result === "pass" || s.result === "skipped") && r.stages.some((s) => s.stage === "http" && s.result === "pass"));
    if (r.result === "fail") {
      assert.equal(r.stages.find((s) => s.stage === r.stage)?.result, "fail");
      // Nothing after the failing stage ran.
      const after = r.stages.slice(r.stages.findIndex((s) => s.stage === r.stage) + 1);
      assert.ok(after.every((s) => s.result === "skipped"), JSON.stringify(r.stages));
    }
  });
}

before(async () => {
  internet = await startInternet({ names: ["go.microsoft.com", "aka.ms", "download.windowsupdate.com", "graph.windows.net", "localhost"], untrustedNames: [UNTRUSTED] });
  internet.route("/", (req, res) => {
    const status = (req.headers.host ?? "").startsWith(WARNS) ? 404 : 200;
    res.writeHead(status, { "content-length": 0 });
    res.end();
  });
  internet.route("/fwlink/", (_req, res) => {
    res.writeHead(302, { location: "https://go.microsoft.com/", "content-length": 0 });
    res.end();
  });
  hangServer = createServer((s) => {
    hangAccepted++;
    hangSockets.add(s);
    s.once("data", () => hangGreeted++);
    s.on("error", () => {});
    s.once("close", () => hangSockets.delete(s));
  });
  await new Promise<void>((r) => hangServer.listen(0, "127.0.0.1", r));
  hangPort = (hangServer.address() as { port: number }).port;
  refused = await refusingPort();
  [squid, authSquid] = await Promise.all([startSquid({ hosts: hostsFile() }), startSquid({ hosts: hostsFile(), auth: AUTH })]);
  targets = buildTargets();
});

after(async () => {
  await Promise.all([squid?.stop(), authSquid?.stop()]);
  for (const s of hangSockets) s.destroy();
  await new Promise((r) => hangServer?.close(r));
  await internet?.stop();
});

describe("the endpoint checker", () => {
  test("the targets cover every case", () => {
    const cases = new Set(targets.map((t) => JSON.stringify(expected(t))));
    assert.equal(cases.size, 7, [...cases].join("\n"));
    assert.ok(targets.some((t) => t.scheme === "http" && expected(t).result === "pass"));
    assert.ok(targets.some((t) => t.scheme === "http" && expected(t).result === "fail"));
  });

  test("through Squid without credentials: each endpoint gets its result, stage and code", async () => {
    const report = await run({ mode: "proxy", host: squid.host, port: squid.port });
    assertResults(report.results);
    assert.equal(report.ok, false);
    assert.match(report.route, /^proxy 127\.0\.0\.1:\d+$/);
    assert.match(summaryLine(report), /passed, .* failed, .*not testable/);
    // DNS is the proxy's job on this route: never done here.
    for (const r of report.results.filter((x) => x.stages.length > 0)) assert.equal(r.stages[0]!.result === "pass", false, `${r.url} resolved locally`);
  });

  test("through Squid with the proxy account: the same results, and the account is sent", async () => {
    const report = await run({ mode: "proxy", host: authSquid.host, port: authSquid.port, credentials: AUTH });
    assertResults(report.results);
    const entries = await authSquid.accessEntries();
    assert.ok(entries.some((e) => e.user === AUTH.username && e.method === "CONNECT"));
    assert.ok(entries.some((e) => e.user === AUTH.username && e.method === "HEAD"));
  });

  test("a wrong proxy password fails every tried endpoint at the proxy stage with 407", async () => {
    const report = await run({ mode: "proxy", host: authSquid.host, port: authSquid.port, credentials: { ...AUTH, password: "wrong" } });
    assertResults(report.results, (t) => (t.untestable ? undefined : { result: "fail", stage: "proxy", code: 407 }));
    assert.ok(report.results.every((r) => r.result !== "pass"));
  });

  test("no account on a proxy that requires one: 407 at the proxy stage", async () => {
    const report = await run({ mode: "proxy", host: authSquid.host, port: authSquid.port });
    assertResults(report.results, (t) => (t.untestable ? undefined : { result: "fail", stage: "proxy", code: 407 }));
  });

  test("a proxy that is not running: 12029 at the proxy stage", async () => {
    const report = await run({ mode: "proxy", host: "127.0.0.1", port: refused }, { concurrency: 4 });
    assertResults(report.results, (t) => (t.untestable ? undefined : { result: "fail", stage: "proxy", code: 12029 }));
  });

  test("direct: names resolved here, the same results, unknown names at the dns stage", async () => {
    const report = await run({ mode: "direct" });
    assertResults(report.results);
    const ok = report.results.find((r) => r.result === "pass" && r.scheme === "https")!;
    assert.deepEqual(ok.stages.map((s) => [s.stage, s.result]), [["dns", "pass"], ["proxy", "skipped"], ["connect", "pass"], ["tls", "pass"], ["http", "pass"]]);
  });

  test("concurrency 1 gives the same results in the same order", async () => {
    const report = await run({ mode: "proxy", host: squid.host, port: squid.port }, { concurrency: 1 });
    assertResults(report.results);
    assert.equal(report.concurrency, 1);
  });

  test("a stopped run: the running and the waiting endpoints are skipped, never passed", async () => {
    const hang = targets.find((t) => t.host === HANGS)!;
    const ok = targets.find((t) => t.host === "go.microsoft.com" && t.scheme === "https")!;
    const egress = new Egress({ mode: "proxy", host: squid.host, port: squid.port });
    const stop = new AbortController();
    try {
      const seen = hangGreeted;
      const running = checkEndpoints([hang, ok], { egress, ca: [internet.ca.certPem], stageTimeoutMs: 60_000, concurrency: 1, signal: stop.signal });
      // Stop once the hanging endpoint's TLS stage has begun (its ClientHello arrived; no answer ever comes).
      // The wait is for a condition; its bound only keeps a broken run from hanging the suite.
      const deadline = Date.now() + 60_000;
      while (hangGreeted === seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(hangGreeted > seen, "the hanging endpoint's TLS stage began");
      stop.abort();
      const report = await running;
      assert.equal(report.aborted, true);
      assert.deepEqual(report.results.map((r) => r.result), ["skipped", "skipped"]);
      assert.match(summaryLine(report), /stopped before the end/);
    } finally {
      await egress.close();
    }
  });

  test("only required endpoints that were tried decide; a warn is not a pass", () => {
    const r = (over: Partial<CheckResult>): CheckResult => ({ url: "u", address: "a", endpointIds: [], host: "h", port: 443, scheme: "https", required: true, result: "pass", stage: "http", code: null, hop: null, httpStatus: 200, ms: 1, message: "", stages: [], ...over });
    assert.equal(isRequiredOk([r({}), r({ result: "not-testable" }), r({ result: "fail", required: false })]), true);
    assert.equal(isRequiredOk([r({}), r({ result: "warn" })]), false);
    assert.equal(isRequiredOk([r({ result: "fail", stage: "dns", code: 12007 })]), false);
  });

  test("entries sharing a URL are checked once; wildcards with a known host are tried", () => {
    const sel = selectEndpoints({ roles: ["service-connection-point"], cloud: "public" });
    const plain = checkTargets(sel);
    const go = plain.filter((t) => t.url === "https://go.microsoft.com/");
    assert.equal(go.length, 1);
    assert.ok(go[0]!.endpointIds.length >= 2, go[0]!.endpointIds.join());
    assert.ok(plain.find((t) => t.address === "*.manage.microsoft.com")?.untestable);
    const known = checkTargets(sel, { wildcardHosts: { "*.manage.microsoft.com": "a.manage.microsoft.com" } });
    const w = known.find((t) => t.address === "*.manage.microsoft.com" && t.scheme === "https")!;
    assert.equal(w.untestable, undefined);
    assert.equal(w.url, "https://a.manage.microsoft.com/");
    assert.throws(() => checkTargets(sel, { wildcardHosts: { "*.manage.microsoft.com": "evil.example" } }), /not a host under/);
  });
});
