import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import vm from "node:vm";
import { bundledCatalog, selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { exportEndpoints, parseProxyAddress, squidAclName, toCsv, toPac, toSquid, toText, withoutOverlaps } from "../../../src/endpoints/export.ts";
import { ValidationError } from "../../../src/errors.ts";

const SQUID = ["/usr/sbin/squid", "/usr/local/sbin/squid"].find((p) => existsSync(p));

/** The whole catalog with every placeholder filled in. */
const everything = selectEndpoints({ cmgName: "GraniteFalls", childSupFqdn: "sup.child.contoso.com", parentSupFqdn: "sup.parent.contoso.com" });

function squidParse(snippet: string): { status: number | null; output: string } {
  assert.ok(SQUID, "squid is installed (Debian package squid)");
  const dir = mkdtempSync(join(tmpdir(), "opencmg-squid-"));
  try {
    writeFileSync(join(dir, "opencmg.conf"), snippet);
    const conf = join(dir, "squid.conf");
    writeFileSync(
      conf,
      [
        "http_port 127.0.0.1:3128",
        `pid_filename ${join(dir, "squid.pid")}`,
        "access_log none",
        `cache_log ${join(dir, "cache.log")}`,
        "cache deny all",
        `include ${join(dir, "opencmg.conf")}`,
        "http_access allow opencmg_url_forwarding",
        "http_access deny all",
        "",
      ].join("\n"),
    );
    const r = spawnSync(SQUID, ["-k", "parse", "-f", conf], { encoding: "utf8", timeout: 30_000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("squid: a real Squid accepts the whole catalog's snippet without a warning", () => {
  const snippet = toSquid(everything.endpoints);
  const r = squidParse(snippet);
  assert.equal(r.status, 0, r.output);
  assert.doesNotMatch(r.output, /WARNING|ERROR|FATAL/, r.output);
  // Squid read our lines (the include was processed).
  assert.match(r.output, /Processing: acl opencmg_software_updates dstdomain \.windowsupdate\.microsoft\.com/);
});

test("squid: overlapping dstdomain entries are what Squid refuses, so the export leaves them out", () => {
  // This Squid's behaviour, which the export relies on: a name then a dot entry covering it is fatal.
  const naive = "acl opencmg_url_forwarding dstdomain aka.ms\nacl opencmg_x dstdomain windowsupdate.microsoft.com\nacl opencmg_x dstdomain .windowsupdate.microsoft.com\n";
  const r = squidParse(naive);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /subdomain of/);

  const snippet = toSquid(everything.endpoints);
  const acl = (name: string) => snippet.split("\n").filter((l) => l.startsWith(`acl ${name} `)).map((l) => l.split(" ")[3]);
  assert.deepEqual(acl("opencmg_software_updates"), [
    ".windowsupdate.microsoft.com", // covers windowsupdate.microsoft.com itself
    ".update.microsoft.com", // covers test.stats.update.microsoft.com
    ".windowsupdate.com", // covers download.windowsupdate.com and .download.windowsupdate.com
    "download.microsoft.com",
    "ntservicepack.microsoft.com",
  ]);
  assert.deepEqual(acl("opencmg_url_forwarding"), ["aka.ms", "go.microsoft.com"]);
  assert.deepEqual(acl("opencmg_cloud_services_cmg_connection_point"), [
    "granitefalls.cloudapp.net",
    "granitefalls.usgovcloudapp.net",
    "management.core.windows.net",
    "granitefalls.blob.core.windows.net",
    "granitefalls.blob.core.usgovcloudapi.net",
  ]);
  // Other sections keep their own names: overlaps across ACLs are fine for Squid.
  assert.ok(acl("opencmg_updates_and_servicing").includes("download.windowsupdate.com"));
  // Intranet firewall entries are not proxy rules.
  assert.equal(acl("opencmg_intranet_firewall").length, 0);
  assert.match(snippet, /# Left out: 4 intranet firewall entries/);
  assert.match(snippet, /^# http_access allow opencmg_asset_intelligence$/m);
  assert.doesNotMatch(snippet, /^http_access/m);
});

test("squid: withoutOverlaps follows dstdomain semantics", () => {
  assert.deepEqual(withoutOverlaps(["x.com", ".x.com", "a.x.com", ".b.x.com", "ax.com", "x.com", ".X.com"]), [".x.com", "ax.com"]);
  assert.deepEqual(withoutOverlaps([".b.x.com", "c.b.x.com", "y.com"]), [".b.x.com", "y.com"]);
  assert.equal(squidAclName("cloud-services-client"), "opencmg_cloud_services_client");
});

/** The standard PAC helpers the export uses; the others throw so an unexpected use shows. */
function pacSandbox(): vm.Context {
  const unexpected = (name: string) => () => {
    throw new Error(`PAC uses ${name}, which this test does not provide`);
  };
  return vm.createContext({
    dnsDomainIs: (host: string, domain: string) => host.length >= domain.length && host.substring(host.length - domain.length) === domain,
    shExpMatch: (str: string, exp: string) =>
      new RegExp(`^${exp.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`).test(str),
    isPlainHostName: (host: string) => !host.includes("."),
    dnsResolve: unexpected("dnsResolve"),
    isResolvable: unexpected("isResolvable"),
    isInNet: unexpected("isInNet"),
    myIpAddress: unexpected("myIpAddress"),
  });
}

function pac(source: string): (host: string) => string {
  const ctx = pacSandbox();
  vm.runInContext(source, ctx, { timeout: 1000 });
  const fn = ctx.FindProxyForURL as (url: string, host: string) => string;
  return (host) => fn(`https://${host}/`, host);
}

test("pac: catalog hosts and wildcard subdomains go to the proxy, everything else direct", () => {
  const find = pac(toPac(everything.endpoints, parseProxyAddress("proxy.contoso.com:8080")));
  const PROXY = "PROXY proxy.contoso.com:8080";
  for (const host of [
    "aka.ms",
    "go.microsoft.com",
    "download.microsoft.com",
    "manage.microsoft.com",
    "windowsupdate.microsoft.com",
    "download.windowsupdate.com",
    "granitefalls.cloudapp.net",
    "granitefalls.blob.core.windows.net",
    "login.microsoftonline.us",
    "graph.microsoft.com",
    "ssu2.manage.microsoft.com",
    "AKA.MS.", // case and a trailing dot do not matter
  ])
    assert.equal(find(host), PROXY, host);
  for (const host of ["a1.akamaiedge.net", "x.y.manage.microsoft.com", "geo.do.dsp.mp.microsoft.com", "anything.blob.core.windows.net", "a.b.windowsupdate.com", "fe2.update.microsoft.com"])
    assert.equal(find(host), PROXY, host);
  for (const host of [
    "example.com",
    "microsoft.com",
    "akamaiedge.net", // *.akamaiedge.net means names under it
    "do.dsp.mp.microsoft.com",
    "evilaka.ms",
    "aka.ms.evil.example",
    "notakamaiedge.net",
    "other.cloudapp.net",
    "sup.child.contoso.com", // intranet firewall entries never go to the proxy
    "localhost",
    "intranet",
  ])
    assert.equal(find(host), "DIRECT", host);

  const source = toPac(everything.endpoints, { host: "p", port: 1 });
  assert.doesNotMatch(source, /"\.download\.windowsupdate\.com"/); // covered by .windowsupdate.com
  assert.doesNotMatch(source, /"download\.windowsupdate\.com"/);
  // Every catalog host answers PROXY.
  for (const e of everything.endpoints.filter((x) => x.network === "internet"))
    assert.equal(find(e.wildcard ? `z9${e.host.slice(1)}` : e.host), PROXY, e.id);
});

test("pac: a narrow selection sends only its own hosts; IPv6 and IPv4 proxies", () => {
  const sel = selectEndpoints({ roles: ["asset-intelligence-sync-point"] });
  const find = pac(exportEndpoints("pac", sel, { proxy: parseProxyAddress("[::1]:3128") }));
  assert.equal(find("sc.microsoft.com"), "PROXY [::1]:3128");
  assert.equal(find("aka.ms"), "PROXY [::1]:3128");
  assert.equal(find("download.microsoft.com"), "DIRECT");
  assert.equal(pac(toPac(sel.endpoints, { host: "10.0.0.5", port: 3128 }))("go.microsoft.com"), "PROXY 10.0.0.5:3128");
  assert.deepEqual(parseProxyAddress(" proxy:80 "), { host: "proxy", port: 80 });
  for (const bad of ["proxy", "proxy:0", "proxy:65536", "pro xy:80", "http://proxy:80", "a\";alert(1);\":80", "[zz]:80"])
    assert.throws(() => parseProxyAddress(bad), (e) => e instanceof ValidationError && e.field === "proxy", bad);
  assert.throws(() => exportEndpoints("pac", sel), (e) => e instanceof ValidationError && e.field === "proxy");
});

/** RFC 4180 reader, to check the writer. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === "") {
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') (field += '"'), (i += 2);
        else if (text[i] === '"') {
          i++;
          break;
        } else field += text[i++]!;
      }
    } else if (c === ",") row.push(field), (field = ""), i++;
    else if (c === "\r" && text[i + 1] === "\n") row.push(field), rows.push(row), (row = []), (field = ""), (i += 2);
    else assert.ok(c !== "\n" && c !== '"', `bare ${JSON.stringify(c)} at ${i}`), (field += c), i++;
  }
  assert.equal(row.length + field.length, 0, "ends with CRLF");
  return rows;
}

test("csv: RFC 4180, one record per endpoint and port", () => {
  const csv = toCsv(everything.endpoints);
  const rows = parseCsv(csv);
  const header = rows[0]!;
  assert.deepEqual(header.slice(0, 7), ["id", "section", "address", "host", "scheme", "port", "url"]);
  assert.equal(rows.length - 1, everything.endpoints.reduce((n, e) => n + e.targets.length, 0));
  assert.ok(rows.every((r) => r.length === header.length));
  const notes = header.indexOf("notes");
  const fw = rows.find((r) => r[0] === "windows-10-servicing/https-go.microsoft.com-fwlink-619849")!;
  assert.equal(fw[6], "https://go.microsoft.com/fwlink/?LinkID=619849");
  // Notes hold commas and quotes-free text; both survive the round trip.
  const e = everything.endpoints.find((x) => x.id === fw[0])!;
  assert.equal(fw[notes], e.notes);
  const quoted = toCsv([{ ...e, notes: 'say "hi", then\r\nleave' }]);
  assert.equal(parseCsv(quoted)[1]![notes], 'say "hi", then\r\nleave');
  assert.match(quoted, /,"say ""hi"", then\r\nleave"\r\n$/);
});

test("text and json", () => {
  const sel = selectEndpoints({ roles: ["cmg-connection-point"], cloud: "public" });
  const text = toText(sel.endpoints);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, sel.endpoints.length + 1);
  const col = lines[0]!.indexOf("PORTS");
  assert.ok(lines.every((l) => /^\S/.test(l.slice(col)) && l[col - 1] === " "), text);
  assert.match(text, /^https:\/\/management\.core\.windows\.net\/\s+443\/https\s+any\s+yes\s+cloud-services-cmg-connection-point\s+cmg-connection-point$/m);

  assert.match(toText(selectEndpoints({ roles: ["console"] }).endpoints), /^https:\/\/aka\.ms\s.*\s\(all\)$/m);

  const json = JSON.parse(exportEndpoints("json", sel));
  assert.equal(json.catalog.version, bundledCatalog().version);
  assert.deepEqual(json.endpoints.map((e: { host: string }) => e.host), ["aka.ms", "go.microsoft.com", "management.core.windows.net"]);
  assert.deepEqual(json.omitted.map((o: { address: string }) => o.address), ["<name>.cloudapp.net", "<name>.blob.core.windows.net"]);
  assert.match(json.omitted[0].reason, /cmgName/);
});
