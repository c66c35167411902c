/**
 * `opencmg endpoints` and `opencmg check` through the CLI (in-process, same code path as the
 * binary). The checks go through a real Squid whose hosts_file points the catalog's names at
 * loopback stand-ins listening on the catalog's own ports (443/80) of a loopback address of
 * their own: that needs root (or a low unprivileged port start); without it those tests skip.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import vm from "node:vm";
import { selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { createCa, issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { StatusId } from "../../../src/site/status-ids.ts";
import { runCli } from "../../helpers/cli.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";

/** A loopback address of our own, so ports 443 and 80 are ours whatever else runs. */
const STAND_IN = `127.${77}.${(process.pid % 200) + 20}.1`;
/** Nothing listens here: connections are refused. */
const NOWHERE = `127.${77}.${(process.pid % 200) + 20}.2`;
const SCP_HOSTS = [...new Set(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }).endpoints.filter((e) => !e.wildcard).map((e) => e.host))];

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "opencmg-cli-endpoints-"));
  dirs.push(d);
  return d;
};

let ca: IssuedCert;
let servers: Server[] = [];
let squid: TestSquid | undefined;
/** Why the network tests cannot run here (undefined: they can). */
let cannotListen: string | undefined;

const answer: RequestListener = (req, res) => {
  res.writeHead(req.url?.startsWith("/fwlink/") ? 302 : 200, { "content-length": 0, location: "https://go.microsoft.com/" });
  res.end();
};

async function listen(server: Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, STAND_IN, () => resolve());
  });
  servers.push(server);
}

before(async () => {
  ca = await createCa({ commonName: "OpenCMG CLI Test CA" });
  const cert = await issueCert({ issuer: ca, commonName: "go.microsoft.com", dnsNames: SCP_HOSTS, usage: "server" });
  try {
    await listen(createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, answer), 443);
    await listen(createHttpServer(answer), 80);
  } catch (e) {
    cannotListen = `cannot listen on ${STAND_IN}:443/80 (${(e as Error).message})`;
    return;
  }
  const hosts: Record<string, string> = Object.fromEntries(SCP_HOSTS.map((h) => [h, STAND_IN]));
  hosts["download.microsoft.com"] = NOWHERE;
  squid = await startSquid({ hosts });
});

after(async () => {
  await squid?.stop();
  for (const s of servers) {
    s.closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
  servers = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function pacOf(source: string): (host: string) => string {
  const ctx = vm.createContext({
    dnsDomainIs: (host: string, domain: string) => host.length >= domain.length && host.endsWith(domain),
    isPlainHostName: (host: string) => !host.includes("."),
  });
  vm.runInContext(source, ctx, { timeout: 1000 });
  const fn = ctx.FindProxyForURL as (url: string, host: string) => string;
  return (host) => fn(`https://${host}/`, host);
}

describe("opencmg endpoints", () => {
  test("--format squid: a real Squid parses the output as is", async () => {
    const r = await runCli(["--data", join(tmp(), "none"), "endpoints", "--role", "software-update-point", "--format", "squid"]);
    assert.equal(r.code, 0, r.stderr);
    const dir = tmp();
    writeFileSync(join(dir, "opencmg.conf"), r.stdout);
    const conf = join(dir, "squid.conf");
    writeFileSync(conf, [`http_port 127.0.0.1:3128`, `pid_filename ${join(dir, "squid.pid")}`, "access_log none", `cache_log ${join(dir, "cache.log")}`, `include ${join(dir, "opencmg.conf")}`, "http_access allow opencmg_software_updates", "http_access deny all", ""].join("\n"));
    const p = spawnSync("/usr/sbin/squid", ["-k", "parse", "-f", conf], { encoding: "utf8", timeout: 30_000 });
    assert.equal(p.status, 0, `${p.stdout}${p.stderr}`);
    assert.doesNotMatch(`${p.stdout}${p.stderr}`, /WARNING|ERROR|FATAL/);
    assert.match(r.stdout, /^acl opencmg_software_updates dstdomain \.windowsupdate\.microsoft\.com$/m);
  });

  test("--format pac: catalog hosts to the proxy, the rest direct", async () => {
    const r = await runCli(["--data", join(tmp(), "none"), "endpoints", "--format", "pac", "--proxy", "proxy.contoso.com:8080", "--cmg-name", "GraniteFalls"]);
    assert.equal(r.code, 0, r.stderr);
    const find = pacOf(r.stdout);
    assert.equal(find("go.microsoft.com"), "PROXY proxy.contoso.com:8080");
    assert.equal(find("granitefalls.cloudapp.net"), "PROXY proxy.contoso.com:8080");
    assert.equal(find("a.b.windowsupdate.com"), "PROXY proxy.contoso.com:8080");
    assert.equal(find("www.example.org"), "DIRECT");
  });

  test("no name: the <name> entries are left out with a note on stderr; no site folder is created", async () => {
    const data = join(tmp(), "none");
    const r = await runCli(["--data", data, "endpoints", "--role", "cmg-connection-point", "--cloud", "public", "--format", "csv"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /left out: .*--cmg-name NAME.*<name>\.cloudapp\.net/);
    assert.doesNotMatch(r.stdout, /<name>/);
    assert.match(r.stdout, /management\.core\.windows\.net/);
    assert.equal(spawnSync("test", ["-e", data]).status, 1);
  });

  test("with a site and no filters: the endpoints of the installed roles", async () => {
    const data = tmp();
    const site = await openSite({ dataDir: data });
    await initSite(site, { code: "P01", name: "Test" });
    await site.services.servers.add({ fqdn: "sup01.contoso.com" });
    await site.services.roles.add("sup01.contoso.com", "software-update-point");
    await site.close();
    const r = await runCli(["--data", data, "endpoints", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const ids = (r.json().endpoints as { id: string }[]).map((e) => e.id);
    assert.ok(ids.includes("software-updates/http-download.windowsupdate.com"));
    assert.ok(ids.includes("url-forwarding/https-aka.ms"));
    assert.ok(!ids.some((id) => id.startsWith("cloud-services-console/")), "nothing for roles the site does not have");
  });

  test("bad arguments exit 2 and name the setting", async () => {
    const data = join(tmp(), "none");
    for (const [args, field] of [
      [["endpoints", "--cloud", "mars"], /cloud/],
      [["endpoints", "--format", "xml"], /format/],
      [["endpoints", "--role", "toaster"], /role/],
      [["endpoints", "--format", "pac"], /proxy/],
      [["endpoints", "--format", "pac", "--proxy", "nohost"], /proxy/],
      [["check", "--timeout", "0"], /timeout/],
      [["check", "--concurrency", "many"], /concurrency/],
      [["check", "--server", "a.contoso.com", "--proxy", "http://127.0.0.1:3128"], /server/],
      [["check", "--proxy", "ftp://127.0.0.1:21"], /proxy/],
      [["check", "--server", "a.contoso.com"], /server/],
      [["check", "--site"], /site/],
      [["check", "--wildcard-host", "www.example.org"], /wildcardHost/],
    ] as const) {
      const r = await runCli(["--data", data, ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, field, args.join(" "));
    }
  });
});

describe("opencmg check", () => {
  test("--json through --proxy: exit 0 when every required endpoint passed", async (t) => {
    if (cannotListen) return t.skip(cannotListen);
    const caFile = join(tmp(), "ca.pem");
    writeFileSync(caFile, ca.certPem);
    const r = await runCli(["--data", join(tmp(), "none"), "check", "--json", "--proxy", `http://127.0.0.1:${squid!.port}`, "--feature", "url-forwarding", "--ca", caFile, "--timeout", "5"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const doc = r.json();
    assert.equal(doc.ok, true);
    assert.deepEqual(doc.results.map((x: { url: string }) => x.url).sort(), ["https://aka.ms/", "https://go.microsoft.com/"]);
    for (const x of doc.results) {
      assert.equal(x.result, "pass");
      assert.equal(x.stage, "http");
      assert.equal(x.code, null);
      assert.equal(typeof x.ms, "number");
    }
  });

  test("--json: exit 1 when a required endpoint fails, with its stage and code", async (t) => {
    if (cannotListen) return t.skip(cannotListen);
    const caFile = join(tmp(), "ca.pem");
    writeFileSync(caFile, ca.certPem);
    // download.microsoft.com points where nothing listens; officecdn.microsoft.com is in no hosts file.
    const r = await runCli(["--data", join(tmp(), "none"), "check", "--json", "--proxy", `http://127.0.0.1:${squid!.port}`, "--feature", "windows-servicing", "--feature", "office-365", "--ca", caFile, "--timeout", "5"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const byUrl = new Map((r.json().results as { url: string; result: string; stage: string; code: number }[]).map((x) => [x.url, x]));
    assert.deepEqual(pick(byUrl.get("https://download.microsoft.com/")), { result: "fail", stage: "connect", code: 12029 });
    assert.deepEqual(pick(byUrl.get("http://download.microsoft.com/")), { result: "fail", stage: "connect", code: 12029 });
    assert.deepEqual(pick(byUrl.get("https://officecdn.microsoft.com/")), { result: "fail", stage: "dns", code: 12007 });
    assert.deepEqual(pick(byUrl.get("https://dl.delivery.mp.microsoft.com/")), { result: "pass", stage: "http", code: null });
  });

  test("text output: a table and a one-line summary", async (t) => {
    if (cannotListen) return t.skip(cannotListen);
    const caFile = join(tmp(), "ca.pem");
    writeFileSync(caFile, ca.certPem);
    const r = await runCli(["--data", join(tmp(), "none"), "check", "--proxy", `http://127.0.0.1:${squid!.port}`, "--role", "service-connection-point", "--ca", caFile, "--timeout", "5"]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^RESULT\s+REQ\s+STAGE\s+CODE\s+MS\s+URL/m);
    assert.match(r.stdout, /^FAIL\s+yes\s+connect\s+12029\s+\d+\s+https:\/\/download\.microsoft\.com\//m);
    assert.match(r.stdout, /^NOT-TESTABLE\s+yes\s+-\s+-\s+-\s+https:\/\/\*\.akamaiedge\.net\//m);
    assert.match(r.stdout, /\d+ passed, \d+ failed, .*not testable \(wildcards\) of \d+; \d+ required endpoint\(s\) did not pass \(proxy 127\.0\.0\.1:\d+, \d+ ms\)\.\n$/);
    assert.match(r.stderr, /Checking through proxy 127\.0\.0\.1:\d+ without an account \(--proxy\)/);
  });

  test("--site and --server: the service connection point's proxy and account; 11488 recorded once", async (t) => {
    if (cannotListen) return t.skip(cannotListen);
    const data = tmp();
    writeFileSync(join(data, "egress-ca.pem"), ca.certPem);
    const site = await openSite({ dataDir: data });
    await initSite(site, { code: "P01", name: "Test" });
    await site.services.servers.add({ fqdn: "scp01.contoso.com" });
    await site.services.accounts.add("svc-proxy", "svc-proxy", "not-checked-by-this-squid");
    await site.services.proxies.set("scp01.contoso.com", { host: "127.0.0.1", port: squid!.port, account: "svc-proxy" });
    await site.services.roles.add("scp01.contoso.com", "service-connection-point");
    await site.close();

    const server = await runCli(["--data", data, "check", "--server", "scp01.contoso.com", "--json", "--timeout", "5"]);
    assert.equal(server.code, 1, server.stderr);
    assert.match(server.stderr, /proxy 127\.0\.0\.1:\d+ as svc-proxy \(the proxy configuration of scp01\.contoso\.com, as its service-connection-point\)/);
    assert.equal(server.json().route.includes("svc-proxy"), true);
    assert.ok((await squid!.accessEntries()).some((e) => e.proxyAuthorization.startsWith("Basic ")));

    const first = await runCli(["--data", data, "check", "--site", "--json", "--timeout", "5"]);
    assert.equal(first.code, 1, first.stderr);
    assert.deepEqual(first.json().site, { server: "scp01.contoso.com", transition: "raised", statusMessage: StatusId.ENDPOINTS_UNREACHABLE, component: "Critical" });
    const second = await runCli(["--data", data, "check", "--site", "--timeout", "5"]);
    assert.equal(second.code, 1);
    assert.match(second.stdout, /SMS_SERVICE_CONNECTOR on scp01\.contoso\.com is Critical; the same endpoints as already reported/);
    const msgs = await runCli(["--data", data, "status", "messages", "--id", String(StatusId.ENDPOINTS_UNREACHABLE), "--json"]);
    assert.equal(msgs.json().length, 1);
    assert.match(msgs.json()[0].text, /download\.microsoft\.com\/ \(error 12029 at the connect stage\)/);
  });
});

function pick(x: { result: string; stage: string; code: number } | undefined) {
  assert.ok(x, "result present");
  return { result: x.result, stage: x.stage, code: x.code };
}
