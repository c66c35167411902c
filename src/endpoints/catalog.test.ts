import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { bundledCatalog, hostOf, parseCatalog, selectEndpoints, ROLES } from "./catalog.ts";
import { ValidationError } from "../errors.ts";

/**
 * Written by hand from seeds/002 (Internet access requirements): per section, how many endpoints
 * the document lists (one per line of the document, per cloud variant) and a few exact addresses.
 * Sections that only refer to another document list 0.
 */
const EXPECTED: Record<string, { count: number; addresses: string[] }> = {
  "url-forwarding": { count: 2, addresses: ["https://aka.ms", "https://go.microsoft.com"] },
  "service-connection-point": { count: 1, addresses: ["manage.microsoft.com"] }, // the section's tip
  "updates-and-servicing": {
    count: 9,
    addresses: ["*.akamaiedge.net", "*.akamaitechnologies.com", "*.manage.microsoft.com", "go.microsoft.com", "*.blob.core.windows.net", "download.microsoft.com", "download.windowsupdate.com", "sccmconnected-a01.cloudapp.net", "configmgrbits.azureedge.net"],
  },
  "windows-10-servicing": { count: 3, addresses: ["download.microsoft.com", "https://go.microsoft.com/fwlink/?LinkID=619849", "dl.delivery.mp.microsoft.com"] },
  "azure-services": { count: 2, addresses: ["management.azure.com", "management.usgovcloudapi.net"] },
  "co-management": { count: 0, addresses: [] },
  "microsoft-store-for-business": { count: 0, addresses: [] },
  "delivery-optimization": { count: 1, addresses: ["*.do.dsp.mp.microsoft.com"] },
  "cloud-services": { count: 0, addresses: [] },
  "cloud-services-service-connection-point": { count: 2, addresses: ["https://graph.microsoft.com/", "https://graph.windows.net/"] },
  "cloud-services-cmg-connection-point": {
    count: 5,
    addresses: ["<name>.cloudapp.net", "<name>.usgovcloudapp.net", "https://management.core.windows.net/", "<name>.blob.core.windows.net", "<name>.blob.core.usgovcloudapi.net"],
  },
  "cloud-services-client": {
    count: 6,
    addresses: ["<name>.cloudapp.net", "<name>.usgovcloudapp.net", "<name>.blob.core.windows.net", "<name>.blob.core.usgovcloudapi.net", "login.microsoftonline.com", "login.microsoftonline.us"],
  },
  "cloud-services-console": { count: 4, addresses: ["login.microsoftonline.com", "aadcdn.msauth.net", "aadcdn.msftauth.net", "login.microsoftonline.us"] },
  "software-updates": {
    count: 11,
    addresses: ["http://windowsupdate.microsoft.com", "http://*.windowsupdate.microsoft.com", "https://*.windowsupdate.microsoft.com", "http://test.stats.update.microsoft.com", "http://ntservicepack.microsoft.com"],
  },
  "intranet-firewall": {
    count: 4,
    addresses: ["http://<FQDN for software update point on child site>", "https://<FQDN for software update point on parent site>"],
  },
  "manage-office-365": { count: 3, addresses: ["officecdn.microsoft.com", "config.office.com", "contentstorage.osi.office.net"] },
  console: { count: 0, addresses: [] },
  "in-console-feedback": { count: 1, addresses: ["http://petrol.office.microsoft.com"] },
  "community-workspace": { count: 0, addresses: [] },
  "documentation-node": { count: 2, addresses: ["https://aka.ms", "https://raw.githubusercontent.com"] },
  "community-hub": { count: 2, addresses: ["https://github.com", "https://communityhub.microsoft.com"] },
  "monitoring-site-hierarchy": { count: 1, addresses: ["http://maps.bing.com"] },
  "desktop-analytics": { count: 0, addresses: [] },
  "tenant-attach": { count: 0, addresses: [] },
  "endpoint-analytics": { count: 0, addresses: [] },
  "asset-intelligence": { count: 2, addresses: ["https://sc.microsoft.com", "https://ssu2.manage.microsoft.com"] },
  "microsoft-public-ip-addresses": { count: 0, addresses: [] },
};

const catalog = bundledCatalog();

test("the catalog holds every endpoint of the document, per section", () => {
  const sections = catalog.sections.map((s) => s.id).sort();
  assert.deepEqual(sections, Object.keys(EXPECTED).sort());
  for (const [section, want] of Object.entries(EXPECTED)) {
    const got = catalog.endpoints.filter((e) => e.section === section);
    assert.equal(got.length, want.count, `count in ${section}: ${got.map((e) => e.address).join(" ")}`);
    for (const a of want.addresses)
      assert.ok(got.some((e) => e.address === a), `${section} has ${a}`);
  }
  assert.equal(catalog.endpoints.length, 61);
});

// The source document the catalog was written from, versioned beside it.
const DOCUMENT = new URL("./source/internet-access-requirements.nl.md", import.meta.url);

test("every address in the catalog is written in the document, and every backquoted endpoint of the document is in the catalog", () => {
  const doc = readFileSync(DOCUMENT, "utf8");
  for (const e of catalog.endpoints) assert.ok(doc.includes("`" + e.address + "`"), `document writes ${e.address}`);
  // The document hides one endpoint in an HTML comment ("<name>.table.core.windows.net per DC, only
  // used internally"): not published, so not in the catalog.
  const comments = [...doc.matchAll(/<!--[\s\S]*?-->/g)].map((m) => m[0]);
  assert.ok(comments.some((c) => c.includes("`<name>.table.core.windows.net`") && c.includes("only used internally")));
  const published = doc.replace(/<!--[\s\S]*?-->/g, "");
  // Every code span that looks like a host or URL (not SQL tables or component names).
  const spans = [...published.matchAll(/`([^`\s][^`]*)`/g)].map((m) => m[1]!).filter((s) => /[.]/.test(s) || s.includes("<FQDN"));
  assert.ok(spans.length >= 60);
  const addresses = new Set(catalog.endpoints.map((e) => e.address));
  // The example service name is not an endpoint (it shows what <name> means).
  const examples = new Set(["GraniteFalls.CloudApp.Net", "GraniteFalls.blob.core.windows.net"]);
  for (const s of spans) if (!examples.has(s)) assert.ok(addresses.has(s), `catalog has ${s}`);
});

test("both clouds' variants exist where the document gives them", () => {
  const pairs: [string, string, string][] = [
    ["azure-services", "management.azure.com", "management.usgovcloudapi.net"],
    ["cloud-services-cmg-connection-point", "<name>.cloudapp.net", "<name>.usgovcloudapp.net"],
    ["cloud-services-cmg-connection-point", "<name>.blob.core.windows.net", "<name>.blob.core.usgovcloudapi.net"],
    ["cloud-services-client", "<name>.cloudapp.net", "<name>.usgovcloudapp.net"],
    ["cloud-services-client", "<name>.blob.core.windows.net", "<name>.blob.core.usgovcloudapi.net"],
    ["cloud-services-client", "login.microsoftonline.com", "login.microsoftonline.us"],
    ["cloud-services-console", "login.microsoftonline.com", "login.microsoftonline.us"],
  ];
  const find = (section: string, address: string) => catalog.endpoints.find((e) => e.section === section && e.address === address);
  for (const [section, pub, gov] of pairs) {
    assert.equal(find(section, pub)?.cloud, "public", `${section} ${pub}`);
    assert.equal(find(section, gov)?.cloud, "usgov", `${section} ${gov}`);
  }
  const consolePublic = catalog.endpoints.filter((e) => e.section === "cloud-services-console" && e.cloud === "public");
  assert.deepEqual(consolePublic.map((e) => e.address), ["login.microsoftonline.com", "aadcdn.msauth.net", "aadcdn.msftauth.net"]);
  // Everything else in the document is cloud-independent.
  const perCloud = new Set(pairs.flatMap(([s, a, b]) => [`${s} ${a}`, `${s} ${b}`]).concat(consolePublic.map((e) => `${e.section} ${e.address}`)));
  for (const e of catalog.endpoints) if (!perCloud.has(`${e.section} ${e.address}`)) assert.equal(e.cloud, "any", e.id);
});

test("flags: wildcard, <name>, schemes and ports as the document says", () => {
  const byId = (id: string) => catalog.endpoints.find((e) => e.id === id)!;
  assert.equal(byId("updates-and-servicing/wildcard.akamaiedge.net").wildcard, true);
  assert.equal(byId("updates-and-servicing/go.microsoft.com").wildcard, false);
  // The service connection point section: outbound TCP 443 for HTTPS and TCP 80 for HTTP.
  assert.deepEqual(byId("updates-and-servicing/download.microsoft.com").ports, [
    { scheme: "https", port: 443 },
    { scheme: "http", port: 80 },
  ]);
  assert.deepEqual(byId("software-updates/http-wildcard.windowsupdate.com").ports, [{ scheme: "http", port: 80 }]);
  assert.deepEqual(byId("software-updates/https-wildcard.update.microsoft.com").ports, [{ scheme: "https", port: 443 }]);
  assert.equal(catalog.endpoints.filter((e) => e.takesName).length, 8);
  assert.ok(catalog.endpoints.filter((e) => e.takesName).every((e) => e.address.includes("<name>")));
  assert.equal(catalog.endpoints.filter((e) => e.wildcard).length, 11);
  // The URL forwarding entries and only they are always included (named: an every() over none holds).
  assert.deepEqual(catalog.endpoints.filter((e) => e.always).map((e) => e.id), ["url-forwarding/https-aka.ms", "url-forwarding/https-go.microsoft.com"]);
  assert.deepEqual(
    catalog.endpoints.filter((e) => !e.required).map((e) => e.id),
    ["cloud-services-service-connection-point/https-graph.windows.net"],
  );
  for (const e of catalog.endpoints) assert.ok(e.roles.every((r) => (ROLES as readonly string[]).includes(r)));
});

test("hostOf takes the host from a host or a URL", () => {
  assert.equal(hostOf({ address: "https://go.microsoft.com/fwlink/?LinkID=619849" }), "go.microsoft.com");
  assert.equal(hostOf({ address: "http://*.windowsupdate.com" }), "*.windowsupdate.com");
  assert.equal(hostOf({ address: "*.akamaiedge.net" }), "*.akamaiedge.net");
  assert.equal(hostOf({ address: "https://graph.microsoft.com/" }), "graph.microsoft.com");
  assert.equal(hostOf({ address: "<name>.cloudapp.net" }), "<name>.cloudapp.net");
});

test("selectEndpoints: roles, cloud and <name> (GraniteFalls.cloudapp.net stores at GraniteFalls.blob.core.windows.net)", () => {
  const { endpoints, omitted } = selectEndpoints({ roles: ["cmg-connection-point"], cloud: "public", cmgName: "GraniteFalls.CloudApp.Net" });
  assert.deepEqual(omitted, []);
  assert.deepEqual(endpoints.map((e) => e.host), [
    "aka.ms",
    "go.microsoft.com",
    "granitefalls.cloudapp.net",
    "management.core.windows.net",
    "granitefalls.blob.core.windows.net",
  ]);
  const storage = endpoints.find((e) => e.id === "cloud-services-cmg-connection-point/name.blob.core.windows.net")!;
  assert.equal(storage.address, "<name>.blob.core.windows.net");
  assert.equal(storage.resolvedAddress, "granitefalls.blob.core.windows.net");
  assert.deepEqual(storage.targets, [{ scheme: "https", port: 443, url: "https://granitefalls.blob.core.windows.net/" }]);

  const gov = selectEndpoints({ roles: ["client"], cloud: "usgov", cmgName: "granitefalls" });
  assert.deepEqual(gov.endpoints.map((e) => e.host), [
    "aka.ms",
    "go.microsoft.com",
    "*.do.dsp.mp.microsoft.com",
    "granitefalls.usgovcloudapp.net",
    "granitefalls.blob.core.usgovcloudapi.net",
    "login.microsoftonline.us",
  ]);
  assert.throws(() => selectEndpoints({ cloud: "usgov", cmgName: "GraniteFalls.cloudapp.net" }), (e) => e instanceof ValidationError && e.field === "cmgName");
  assert.throws(() => selectEndpoints({ cmgName: "two labels.x" }), (e) => e instanceof ValidationError && e.field === "cmgName");
});

test("selectEndpoints: entries needing a name or an FQDN are omitted with a reason when none is given", () => {
  const { endpoints, omitted } = selectEndpoints({ roles: ["client"] });
  assert.ok(endpoints.every((e) => !e.takesName));
  // The client's entries that need nothing are still there (the check above holds for no entries too).
  for (const host of ["aka.ms", "go.microsoft.com", "*.do.dsp.mp.microsoft.com", "login.microsoftonline.com", "login.microsoftonline.us"]) {
    assert.ok(endpoints.some((e) => e.host === host), `${host} is selected`);
  }
  assert.deepEqual(omitted.map((o) => o.endpoint.address), [
    "<name>.cloudapp.net",
    "<name>.usgovcloudapp.net",
    "<name>.blob.core.windows.net",
    "<name>.blob.core.usgovcloudapi.net",
  ]);
  assert.ok(omitted.every((o) => o.reason.includes("cmgName")));

  const sup = selectEndpoints({ features: ["software-update-hierarchy"], childSupFqdn: "SUP1.child.contoso.com" });
  assert.deepEqual(
    sup.endpoints.filter((e) => e.network === "intranet").map((e) => e.targets[0]!.url),
    ["http://sup1.child.contoso.com", "https://sup1.child.contoso.com"],
  );
  assert.deepEqual(sup.omitted.map((o) => o.endpoint.parameter), ["parent-sup-fqdn", "parent-sup-fqdn"]);
  const both = selectEndpoints({ features: ["software-update-hierarchy"], childSupFqdn: "a.contoso.com", parentSupFqdn: "b.contoso.com" });
  assert.deepEqual(both.omitted, []);
  assert.deepEqual(both.endpoints.filter((e) => e.network === "intranet").map((e) => e.host), ["a.contoso.com", "a.contoso.com", "b.contoso.com", "b.contoso.com"]);
});

test("selectEndpoints: URL forwarding is always included; features filter; unknown names are refused", () => {
  const ai = selectEndpoints({ roles: ["asset-intelligence-sync-point"] });
  assert.deepEqual(ai.endpoints.map((e) => e.resolvedAddress), ["https://aka.ms", "https://go.microsoft.com", "https://sc.microsoft.com", "https://ssu2.manage.microsoft.com"]);
  const win = selectEndpoints({ features: ["windows-servicing"] });
  assert.deepEqual(win.endpoints.map((e) => e.targets.map((t) => t.url)), [
    ["https://aka.ms"],
    ["https://go.microsoft.com"],
    ["https://download.microsoft.com/", "http://download.microsoft.com/"],
    ["https://go.microsoft.com/fwlink/?LinkID=619849"],
    ["https://dl.delivery.mp.microsoft.com/", "http://dl.delivery.mp.microsoft.com/"],
  ]);
  // Role and feature filters combine (both must match).
  const both = selectEndpoints({ roles: ["console"], features: ["azure-ad"], cloud: "public" });
  assert.deepEqual(both.endpoints.map((e) => e.host), ["aka.ms", "go.microsoft.com", "login.microsoftonline.com", "aadcdn.msauth.net", "aadcdn.msftauth.net"]);
  assert.equal(selectEndpoints().endpoints.length + selectEndpoints().omitted.length, 61);
  assert.throws(() => selectEndpoints({ roles: ["mp"] }), (e) => e instanceof ValidationError && e.field === "role");
  assert.throws(() => selectEndpoints({ features: ["nope"] }), (e) => e instanceof ValidationError && e.field === "feature");
});

test("a broken catalog fails loudly, naming the entry", () => {
  const raw = JSON.parse(readFileSync(new URL("./catalog.json", import.meta.url), "utf8"));
  const broken = (mutate: (c: any) => void): unknown => {
    const c = structuredClone(raw);
    mutate(c);
    return c;
  };
  const fails = (data: unknown, field: RegExp, rule?: RegExp) =>
    assert.throws(() => parseCatalog(data), (e) => e instanceof ValidationError && field.test(e.field) && (rule === undefined || rule.test(e.rule)));

  fails(broken((c) => (c.endpoints[4].roles = ["mp"])), /^catalog\.endpoints\[4\] \(updates-and-servicing\/wildcard\.akamaitechnologies\.com\)\.roles\[0\]$/);
  fails(broken((c) => (c.endpoints[3].wildcard = false)), /\(updates-and-servicing\/wildcard\.akamaiedge\.net\)/, /wildcard must be true/);
  fails(broken((c) => (c.endpoints[20].takesName = false)), /endpoints\[20\] \(cloud-services-cmg-connection-point\/name\.cloudapp\.net\)/, /takesName/);
  fails(broken((c) => (c.endpoints[7].id = c.endpoints[6].id)), /endpoints\[7\]/, /duplicate/);
  fails(broken((c) => (c.endpoints[0].section = "nowhere")), /endpoints\[0\]/, /unknown section|id must start/);
  fails(broken((c) => (c.endpoints[0].extra = 1)), /endpoints\[0\] \(url-forwarding\/https-aka\.ms\)/);
  fails(broken((c) => (c.endpoints[40].ports = [{ scheme: "https", port: 443 }])), /endpoints\[40\]/, /URL's scheme/);
  fails(broken((c) => delete c.version), /^catalog\.version$/);
});
