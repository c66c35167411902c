/**
 * Every proxy rule of SPEC.md section 1, through the site services, on SQLite and PostgreSQL.
 * Each test fails if its rule is broken.
 */
import assert from "node:assert/strict";
import { after, beforeEach, it } from "node:test";
import { NotFoundError, ValidationError } from "../../../src/errors.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { createTestCmg, openTestSite } from "../../helpers/site.ts";
import type { OpenedSite } from "../../../src/site/site.ts";

forEachDatabase("proxy rules", (db) => {
  let site: OpenedSite;
  const opened: OpenedSite[] = [];
  after(async () => {
    for (const s of opened) await s.close();
  });
  beforeEach(async () => {
    site = await openTestSite(db);
    opened.push(site);
    const { servers, accounts } = site.services;
    await servers.add({ fqdn: "ss01.contoso.com", siteServer: true });
    await servers.add({ fqdn: "srv02.contoso.com" });
    await accounts.add("CONTOSO\\svc-proxy", "svc-proxy", "Pr0xy-Secret!");
  });

  const refused = async (p: Promise<unknown>, field: string, rule: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
      assert.equal(e.field, field);
      assert.match(e.rule, rule);
      return true;
    });
  };

  it("all roles on a server share its one proxy configuration, with its account", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "service-connection-point");
    await roles.add("srv02.contoso.com", "asset-intelligence-sync-point");
    await roles.add("srv02.contoso.com", "exchange-connector");
    await createTestCmg(site);
    await roles.add("srv02.contoso.com", "cmg-connection-point", { cmgName: "cmg1" });
    await roles.add("srv02.contoso.com", "software-update-point");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", port: 8080, account: "CONTOSO\\svc-proxy" });
    for (const r of ["service-connection-point", "asset-intelligence-sync-point", "exchange-connector", "cmg-connection-point", "software-update-point"]) {
      const d = await proxies.effective("srv02.contoso.com", r);
      assert.equal(d.use, "proxy", r);
      assert.ok(d.use === "proxy");
      assert.equal(d.host, "proxy.contoso.com");
      assert.equal(d.port, 8080);
      assert.equal(d.account, "CONTOSO\\svc-proxy");
      assert.equal(d.proxyServer, "srv02.contoso.com");
    }
    const { route } = await proxies.route("srv02.contoso.com", "service-connection-point");
    assert.deepEqual(route, { mode: "proxy", host: "proxy.contoso.com", port: 8080, credentials: { username: "svc-proxy", password: "Pr0xy-Secret!" } });
  });

  it("without an account the route carries no credentials (the server goes out as itself)", async () => {
    await site.services.roles.add("srv02.contoso.com", "service-connection-point");
    await site.services.proxies.set("srv02.contoso.com", { host: "proxy.contoso.com" });
    const { route } = await site.services.proxies.route("srv02.contoso.com", "service-connection-point");
    assert.deepEqual(route, { mode: "proxy", host: "proxy.contoso.com", port: 80 });
  });

  it("port defaults to 80 and saving replaces the whole previous configuration", async () => {
    const { proxies } = site.services;
    await proxies.set("srv02.contoso.com", { host: "old.contoso.com", port: 3128, account: "CONTOSO\\svc-proxy" });
    const saved = await proxies.set("srv02.contoso.com", { host: "new.contoso.com" });
    assert.deepEqual(saved, { server: "srv02.contoso.com", enabled: true, host: "new.contoso.com", port: 80, account: null });
    assert.deepEqual(await proxies.show("srv02.contoso.com"), saved);
  });

  it("a disabled or missing proxy configuration means direct, and says so", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "service-connection-point");
    let d = await proxies.effective("srv02.contoso.com", "service-connection-point");
    assert.equal(d.use, "direct");
    assert.match(d.reason, /not configured/);
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", enabled: false });
    d = await proxies.effective("srv02.contoso.com", "service-connection-point");
    assert.equal(d.use, "direct");
    assert.match(d.reason, /disabled/);
  });

  it("SUP proxy options need a configured proxy", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "software-update-point");
    await refused(roles.set("srv02.contoso.com", "software-update-point", { useProxyForSync: true }), "useProxyForSync", /needs a proxy server configured/);
    await refused(roles.set("srv02.contoso.com", "software-update-point", { useProxyForAdr: true }), "useProxyForAdr", /needs a proxy server configured/);
    await refused(roles.add("ss01.contoso.com", "software-update-point", { useProxyForSync: true }), "useProxyForSync", /needs a proxy/);
    assert.equal((await roles.list("ss01.contoso.com")).length, 0, "nothing half-written");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", enabled: false });
    await refused(roles.set("srv02.contoso.com", "software-update-point", { useProxyForSync: true }), "useProxyForSync", /enabled/);
  });

  it("SUP sync and ADR downloads use the proxy only when their option is on", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "software-update-point");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", port: 8080 });
    assert.equal((await proxies.effective("srv02.contoso.com", "software-update-sync")).use, "direct");
    assert.equal((await proxies.effective("srv02.contoso.com", "adr-download")).use, "direct");
    await roles.set("srv02.contoso.com", "software-update-point", { useProxyForSync: true });
    assert.equal((await proxies.effective("srv02.contoso.com", "software-update-sync")).use, "proxy");
    assert.equal((await proxies.effective("srv02.contoso.com", "adr-download")).use, "direct");
    await roles.set("srv02.contoso.com", "software-update-point", { useProxyForAdr: true, useProxyForSync: false });
    assert.equal((await proxies.effective("srv02.contoso.com", "software-update-sync")).use, "direct");
    assert.equal((await proxies.effective("srv02.contoso.com", "adr-download")).use, "proxy");
  });

  it("a proxy the SUP relies on cannot be cleared or disabled under it", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "software-update-point");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com" });
    await roles.set("srv02.contoso.com", "software-update-point", { useProxyForSync: true });
    await refused(proxies.clear("srv02.contoso.com"), "enabled", /software update point/);
    await refused(proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", enabled: false }), "enabled", /software update point/);
    assert.equal((await proxies.show("srv02.contoso.com"))?.enabled, true);
  });

  it("the ADR proxy option is ignored at secondary sites", async () => {
    const { sites, servers, roles, proxies } = site.services;
    await sites.add({ code: "S01", name: "Branch", type: "secondary", parentCode: "P01" });
    await servers.add({ fqdn: "sec01.contoso.com", site: "S01" });
    await roles.add("sec01.contoso.com", "software-update-point");
    await proxies.set("sec01.contoso.com", { host: "proxy.contoso.com" });
    await roles.set("sec01.contoso.com", "software-update-point", { useProxyForAdr: true, useProxyForSync: true });
    const adr = await proxies.effective("sec01.contoso.com", "adr-download");
    assert.equal(adr.use, "direct");
    assert.match(adr.reason, /secondary/);
    assert.equal((await proxies.effective("sec01.contoso.com", "software-update-sync")).use, "proxy");
  });

  it("a distribution point with connected cache only accepts a proxy without an account", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "distribution-point", { connectedCache: true });
    await refused(proxies.set("srv02.contoso.com", { host: "proxy.contoso.com", account: "CONTOSO\\svc-proxy" }), "account", /connected cache/);
    assert.equal(await proxies.show("srv02.contoso.com"), null, "nothing half-written");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com" });
    const d = await proxies.effective("srv02.contoso.com", "distribution-point");
    assert.equal(d.use, "proxy");
    // and the other way round: turning connected cache on under an authenticated proxy
    await roles.add("ss01.contoso.com", "distribution-point");
    await proxies.set("ss01.contoso.com", { host: "proxy.contoso.com", account: "CONTOSO\\svc-proxy" });
    await refused(roles.set("ss01.contoso.com", "distribution-point", { connectedCache: true }), "connectedCache", /unauthenticated/);
    assert.equal((await proxies.effective("ss01.contoso.com", "distribution-point")).use, "none");
  });

  it("the cloud distribution point uses the primary site server's proxy", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "cloud-distribution-point");
    await proxies.set("srv02.contoso.com", { host: "wrong.contoso.com" });
    await proxies.set("ss01.contoso.com", { host: "siteproxy.contoso.com", port: 8081, account: "CONTOSO\\svc-proxy" });
    const d = await proxies.effective("srv02.contoso.com", "cloud-distribution-point");
    assert.equal(d.use, "proxy");
    assert.ok(d.use === "proxy");
    assert.equal(d.proxyServer, "ss01.contoso.com");
    assert.equal(d.host, "siteproxy.contoso.com");
    assert.equal(d.account, "CONTOSO\\svc-proxy");
  });

  it("directory discovery and group sync use the proxy of the server hosting the service connection point", async () => {
    const { roles, proxies } = site.services;
    await refused(proxies.effective("ss01.contoso.com", "directory-user-discovery"), "feature", /service connection point/);
    await roles.add("srv02.contoso.com", "service-connection-point");
    await proxies.set("srv02.contoso.com", { host: "scpproxy.contoso.com", port: 3128 });
    await proxies.set("ss01.contoso.com", { host: "other.contoso.com" });
    for (const f of ["directory-user-discovery", "directory-group-discovery", "group-sync"]) {
      const d = await proxies.effective("ss01.contoso.com", f);
      assert.ok(d.use === "proxy", f);
      assert.equal(d.proxyServer, "srv02.contoso.com");
      assert.equal(d.host, "scpproxy.contoso.com");
    }
  });

  it("the management point does not use the proxy; asking for an uninstalled role is refused", async () => {
    const { roles, proxies } = site.services;
    await roles.add("srv02.contoso.com", "management-point");
    await proxies.set("srv02.contoso.com", { host: "proxy.contoso.com" });
    assert.equal((await proxies.effective("srv02.contoso.com", "management-point")).use, "none");
    await refused(proxies.effective("srv02.contoso.com", "service-connection-point"), "role", /none is installed/);
    await refused(proxies.effective("srv02.contoso.com", "web-browser"), "role", /must be a role/);
    await assert.rejects(proxies.effective("nope.contoso.com", "management-point"), NotFoundError);
  });
});
