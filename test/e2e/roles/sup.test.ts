/**
 * The software update point's outbound traffic with real parts: a real Squid (without and with
 * Basic authentication) in front of a local stand-in for the internet. Each case asserts the bytes
 * that arrived and the log lines written.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NetError } from "../../../src/errors.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { closeMidBody, refusingPort, serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { syncSoftwareUpdates } from "../../../src/roles/sup/sync.ts";
import { adrRunner, supSyncDeps } from "../../../src/app/role-deps.ts";

const SUP = "sup01.contoso.com";
const PASSWORD = "Squid-Pr0xy-Pass";
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let net: Internet;
let open: TestSquid;
let authed: TestSquid;
const opened: OpenedSite[] = [];
const fileA = Buffer.alloc(300_000, 7);
const fileB = Buffer.from("second update payload ".repeat(1000));

before(async () => {
  net = await startInternet();
  [open, authed] = await Promise.all([startSquid({ hosts: net.hosts() }), startSquid({ hosts: net.hosts(), auth: { username: "svc-proxy", password: PASSWORD } })]);
  net.route("/content/a.cab", serveBytes(fileA));
  net.route("/content/b.cab", serveBytes(fileB));
  net.route("/content/cut.cab", closeMidBody(fileA, 100_000));
});
after(async () => {
  for (const s of opened) await s.close();
  await Promise.all([open.stop(), authed.stop(), net.stop()]);
});

interface FileSpec {
  name: string;
  url: string;
  body: Buffer;
  sha256?: string;
}

/** A catalog at /catalog-<tag>.json listing one update per file. */
function publishCatalog(tag: string, files: FileSpec[]): string {
  const catalog = {
    version: 1,
    updates: files.map((f, i) => ({ id: `KB${tag}${i}`, title: `Update ${tag} ${i}`, classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [{ name: f.name, url: f.url, size: f.body.length, sha256: f.sha256 ?? sha(f.body) }] })),
  };
  net.route(`/catalog-${tag}.json`, serveBytes(Buffer.from(JSON.stringify(catalog)), "application/json"));
  return net.url("https", `/catalog-${tag}.json`, "update.opencmg.test");
}

async function siteWithSup(o: { catalogUrl: string; proxy?: TestSquid | { host: string; port: number }; account?: string; password?: string; sync?: boolean; adr?: boolean }): Promise<OpenedSite> {
  const site = await openSite({ dataDir: tempDir(), egressCa: [net.ca.certPem], egressLookup: net.lookup });
  opened.push(site);
  await initSite(site, { code: "P01", name: "Egress test" });
  const { servers, roles, accounts, proxies } = site.services;
  await servers.add({ fqdn: SUP, siteServer: true });
  await roles.add(SUP, "software-update-point", { upstreamUrl: o.catalogUrl });
  if (o.proxy) {
    if (o.account) await accounts.add("CONTOSO\\svc-proxy", o.account, o.password ?? PASSWORD);
    await proxies.set(SUP, { host: o.proxy.host, port: o.proxy.port, account: o.account ? "CONTOSO\\svc-proxy" : null });
    await roles.set(SUP, "software-update-point", { useProxyForSync: o.sync ?? true, useProxyForAdr: o.adr ?? true });
  }
  return site;
}

function ruleengine(site: OpenedSite): string[] {
  const p = join(site.paths.logs, "ruleengine.log");
  return existsSync(p) ? parseLines(readFileSync(p, "utf8")).map((l) => l.text) : [];
}
function libraryFiles(site: OpenedSite): string[] {
  const walk = (d: string): string[] => (existsSync(d) ? readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)])) : []);
  return walk(site.paths.content);
}
const deps = (site: OpenedSite) => supSyncDeps(site);

async function syncAndRun(site: OpenedSite) {
  await syncSoftwareUpdates(deps(site), SUP);
  await site.services.adrs.add({ name: "Patch Tuesday", server: SUP, products: ["Windows 11"] });
  return adrRunner(site).run("Patch Tuesday");
}

describe("software update point egress", () => {
  it("direct: no proxy configured, the bytes arrive and are verified", async () => {
    const url = publishCatalog("direct", [{ name: "a.cab", url: net.url("http", "/content/a.cab", "download.windowsupdate.com"), body: fileA }]);
    const site = await siteWithSup({ catalogUrl: url });
    const r = await syncAndRun(site);
    assert.equal(r.failed, 0);
    const [file] = libraryFiles(site);
    assert.deepEqual(readFileSync(file!), fileA);
    assert.match(ruleengine(site).join("\n"), /Downloading http:\/\/download\.windowsupdate\.com.* directly/);
  });

  for (const withAuth of [false, true]) {
    it(`through the proxy ${withAuth ? "with the proxy account (Basic)" : "without credentials"}: sync over CONNECT, content in absolute form`, async () => {
      const squid = withAuth ? authed : open;
      const tag = withAuth ? "auth" : "noauth";
      const url = publishCatalog(tag, [{ name: "a.cab", url: net.url("http", "/content/a.cab", "download.windowsupdate.com"), body: fileA }, { name: "b.cab", url: net.url("https", "/content/b.cab", "download.windowsupdate.com"), body: fileB }]);
      const site = await siteWithSup({ catalogUrl: url, proxy: squid, ...(withAuth ? { account: "svc-proxy" } : {}) });
      const r = await syncAndRun(site);
      assert.equal(r.failed, 0, JSON.stringify(r.files));
      assert.deepEqual(libraryFiles(site).map((f) => readFileSync(f)).sort((a, b) => a.length - b.length), [fileB, fileA].sort((a, b) => a.length - b.length));
      await site.egress.close(); // kept-alive tunnels are logged by Squid when they close
      const entries = await squid.waitForEntries((e) => e.some((x) => x.url.includes("/content/a.cab")) && e.some((x) => x.method === "CONNECT" && x.url === `update.opencmg.test:${net.httpsPort}`));
      const get = entries.find((e) => e.url.includes(`download.windowsupdate.com:${net.httpPort}/content/a.cab`));
      assert.equal(get?.method, "GET", "http content goes to the proxy in absolute form");
      assert.ok(entries.some((e) => e.method === "CONNECT" && e.url === `update.opencmg.test:${net.httpsPort}`), "the https catalog went through CONNECT");
      for (const e of entries.filter((x) => x.status === 200)) assert.equal(e.user, withAuth ? "svc-proxy" : "-", JSON.stringify(e));
      assert.match(ruleengine(site).join("\n"), new RegExp(`through proxy 127\\.0\\.0\\.1:${squid.port}`));
    });
  }

  it("wrong proxy password: 407 logged, nothing downloaded, status message raised", async () => {
    const url = publishCatalog("wrongpw", [{ name: "a.cab", url: net.url("http", "/content/a.cab", "download.windowsupdate.com"), body: fileA }]);
    const site = await siteWithSup({ catalogUrl: url, proxy: authed, account: "svc-proxy", password: "not-the-password", sync: false });
    await syncSoftwareUpdates(deps(site), SUP); // sync goes direct (option off), ADR through the proxy
    await site.services.adrs.add({ name: "r", server: SUP, products: ["Windows 11"] });
    const r = await adrRunner(site).run("r");
    assert.equal(r.failed, 1);
    assert.equal(r.files[0]!.code, 407);
    assert.ok(ruleengine(site).includes("Failed to download the update from internet. Error = 407."));
    assert.deepEqual(libraryFiles(site), []);
    const msgs = await site.services.status.messages({ component: "SMS_RULE_ENGINE" });
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0]!.severity, "error");
    assert.ok(!readFileSync(join(site.paths.logs, "ruleengine.log"), "utf8").includes("not-the-password"));
  });

  it("proxy down: sync fails with 12029 at the proxy hop", async () => {
    const url = publishCatalog("down", []);
    const site = await siteWithSup({ catalogUrl: url, proxy: { host: "127.0.0.1", port: await refusingPort() } });
    await assert.rejects(syncSoftwareUpdates(deps(site), SUP), (e: unknown) => e instanceof NetError && e.code === 12029 && e.hop === "proxy");
    const wsync = parseLines(readFileSync(join(site.paths.logs, "wsyncmgr.log"), "utf8")).map((l) => l.text);
    assert.ok(wsync.some((t) => /Sync failed: .*Error = 12029\./.test(t)), wsync.join("\n"));
    assert.equal((await site.services.status.messages({ component: "SMS_WSUS_SYNC_MANAGER" }))[0]?.messageId, 6703);
  });

  it("a name that does not resolve: the exact ruleengine.log line with 12007", async () => {
    const url = publishCatalog("nxdomain", [{ name: "x.cab", url: "http://download.nothing.invalid/x.cab", body: fileB }]);
    const site = await siteWithSup({ catalogUrl: url, proxy: open });
    const r = await syncAndRun(site);
    assert.equal(r.files[0]!.code, 12007);
    assert.ok(ruleengine(site).includes("Failed to download the update from internet. Error = 12007."), ruleengine(site).join("\n"));
  });

  it("content whose SHA-256 does not match is refused and not kept", async () => {
    const url = publishCatalog("badhash", [{ name: "a.cab", url: net.url("http", "/content/a.cab", "download.windowsupdate.com"), body: fileA, sha256: sha(fileB) }]);
    const site = await siteWithSup({ catalogUrl: url, proxy: open });
    const r = await syncAndRun(site);
    assert.equal(r.files[0]!.status, "failed");
    assert.equal(r.files[0]!.code, "CONTENT_HASH_MISMATCH");
    assert.deepEqual(libraryFiles(site), []);
  });

  it("an interrupted download leaves no partial file in the content library", async () => {
    const url = publishCatalog("cut", [{ name: "cut.cab", url: net.url("http", "/content/cut.cab", "download.windowsupdate.com"), body: fileA }]);
    const site = await siteWithSup({ catalogUrl: url, proxy: open });
    const r = await syncAndRun(site);
    assert.equal(r.files[0]!.code, 12030);
    assert.ok(ruleengine(site).includes("Failed to download the update from internet. Error = 12030."));
    assert.deepEqual(libraryFiles(site), []);
  });

  it("SUP options decide: sync direct and ADR through the proxy, then the other way round", async () => {
    const url = publishCatalog("opts", [{ name: "b.cab", url: net.url("http", "/content/b.cab", "download.windowsupdate.com"), body: fileB }]);
    const site = await siteWithSup({ catalogUrl: url, proxy: open, sync: false, adr: true });
    const before = (await open.accessEntries()).length;
    await syncAndRun(site);
    let mine = (await open.waitForEntries((e) => e.length > before)).slice(before);
    assert.ok(mine.some((e) => e.url.includes("/content/b.cab")), "ADR went through the proxy");
    assert.ok(!mine.some((e) => e.url.includes("opencmg.test")), "sync did not");
    await site.services.roles.set(SUP, "software-update-point", { useProxyForSync: true, useProxyForAdr: false });
    const mark = (await open.accessEntries()).length;
    await syncSoftwareUpdates(deps(site), SUP);
    await site.egress.close();
    mine = (await open.waitForEntries((e) => e.some((x, i) => i >= mark && x.method === "CONNECT"))).slice(mark);
    assert.ok(mine.some((e) => e.method === "CONNECT" && e.url.startsWith("update.opencmg.test")));
    const d = await site.services.proxies.effective(SUP, "adr-download");
    assert.equal(d.use, "direct");
  });

  it("a proxy configuration replaced mid-way is used for the next request", async () => {
    const url = publishCatalog("switch", [
      { name: "a.cab", url: net.url("http", "/content/a.cab", "download.windowsupdate.com"), body: fileA },
      { name: "b.cab", url: net.url("http", "/content/b.cab", "download.windowsupdate.com"), body: fileB },
    ]);
    const site = await siteWithSup({ catalogUrl: url, proxy: open });
    await site.services.accounts.add("CONTOSO\\svc-proxy", "svc-proxy", PASSWORD);
    await syncSoftwareUpdates(deps(site), SUP);
    await site.services.adrs.add({ name: "r", server: SUP, products: ["Windows 11"] });
    let switched = false;
    const openBefore = (await open.accessEntries()).length;
    const authBefore = (await authed.accessEntries()).length;
    const r = await adrRunner(site).run("r", (p) => {
      if (!switched && p.file === "a.cab" && p.bytes === fileA.length) {
        switched = true;
        void site.services.proxies.set(SUP, { host: authed.host, port: authed.port, account: "CONTOSO\\svc-proxy" });
      }
    });
    assert.equal(r.failed, 0, JSON.stringify(r.files));
    const viaOpen = (await open.waitForEntries((e) => e.slice(openBefore).some((x) => x.url.includes("/content/a.cab")))).slice(openBefore);
    const viaAuth = (await authed.waitForEntries((e) => e.slice(authBefore).some((x) => x.url.includes("/content/b.cab")))).slice(authBefore);
    assert.ok(viaOpen.some((e) => e.url.includes("/content/a.cab")) && !viaOpen.some((e) => e.url.includes("/content/b.cab")));
    assert.ok(viaAuth.some((e) => e.url.includes("/content/b.cab") && e.user === "svc-proxy"));
  });
});
