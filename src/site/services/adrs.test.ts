/**
 * Automatic deployment rules' lifecycle and the software update point's synchronisation schedule,
 * on SQLite and PostgreSQL: edit (rename, filters, refusals naming the field), enable/disable (a
 * disabled rule does not run), delete (its recorded results go with it), run after each
 * synchronisation, and the schedule's validation and due times. Synchronisations and downloads
 * reach only the local stand-in for the internet; the schedule's clock is the site's `now`, moved
 * by the test (no wall-clock waits).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, it } from "node:test";
import { siteOperations } from "../../app/operations.ts";
import { adrRunner } from "../../app/role-deps.ts";
import { OpenCmgError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { runDueSyncs, syncSchedule } from "../../roles/sup/sync-schedule.ts";
import { forEachDatabase, type TestDatabase } from "../../../test/helpers/databases.ts";
import { serveBytes, startInternet, type Internet } from "../../../test/helpers/internet.ts";
import { initSite, openSite, type OpenedSite } from "../site.ts";

const SUP = "sup01.contoso.com";
const HOUR = 3600_000;
const win11 = Buffer.from("windows 11 cumulative update ".repeat(100));
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let net: Internet;
before(async () => {
  net = await startInternet();
  net.route("/content/win11.cab", serveBytes(win11));
  const catalog = {
    version: 1,
    updates: [
      { id: "KB1", title: "Cumulative Update for Windows 11", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [{ name: "win11.cab", url: net.url("http", "/content/win11.cab", "download.windowsupdate.com"), size: win11.length, sha256: sha(win11) }] },
      { id: "KB2", title: "Servicing Stack Update for Windows Server 2025", classification: "Critical Updates", product: "Windows Server 2025", releaseDate: "2026-11-12", files: [] },
    ],
  };
  net.route("/catalog.json", serveBytes(Buffer.from(JSON.stringify(catalog)), "application/json"));
});
after(async () => {
  await net?.stop();
});

const catalogRequests = (): number => net.requests().filter((r) => r.path === "/catalog.json").length;

forEachDatabase("automatic deployment rules and the synchronisation schedule", (db: TestDatabase) => {
  const opened: OpenedSite[] = [];
  let clock = new Date("2026-12-01T08:00:00Z");
  after(async () => {
    for (const s of opened) await s.close();
  });

  async function siteWithSup(): Promise<OpenedSite> {
    const site = await openSite({ ...(await db.fresh()), egressCa: [net.ca.certPem], egressLookup: net.lookup, now: () => clock });
    opened.push(site);
    await initSite(site, { code: "P01", name: "ADR test" });
    await site.services.servers.add({ fqdn: SUP, siteServer: true });
    await site.services.roles.add(SUP, "software-update-point", { upstreamUrl: net.url("https", "/catalog.json", "update.opencmg.test") });
    return site;
  }
  const refusedOn = (field: string, rule: RegExp) => (e: unknown) => {
    assert.ok(e instanceof ValidationError, String(e));
    assert.equal(e.field, field);
    assert.match(e.message, rule);
    return true;
  };

  it("edits a rule: renames it, replaces and clears filters; refuses unknown fields, nothing to change, no filter left and a taken name", async () => {
    const site = await siteWithSup();
    const adrs = site.services.adrs;
    await adrs.add({ name: "Windows 11", server: SUP, products: ["Windows 11"] });
    await adrs.add({ name: "Servers", server: SUP, classifications: ["Critical Updates"] });

    const e = await adrs.edit("Windows 11", { name: "Windows 11 monthly", classifications: ["Security Updates"], titleContains: "Cumulative", runAfterSync: true });
    assert.deepEqual({ ...e, id: 0 }, { id: 0, name: "Windows 11 monthly", server: SUP, products: ["Windows 11"], classifications: ["Security Updates"], titleContains: "Cumulative", enabled: true, runAfterSync: true });
    assert.deepEqual(await adrs.get("Windows 11 monthly"), e);
    assert.equal(await adrs.find("Windows 11"), undefined);
    const cleared = await adrs.edit("Windows 11 monthly", { titleContains: null, classifications: [] });
    assert.equal(cleared.titleContains, null);
    assert.deepEqual(cleared.classifications, []);

    await assert.rejects(adrs.edit("Windows 11 monthly", { server: "other.contoso.com" } as never), refusedOn("server", /is not a known field/));
    await assert.rejects(adrs.edit("Windows 11 monthly", {}), refusedOn("changes", /give at least one of/));
    await assert.rejects(adrs.edit("Windows 11 monthly", { products: [] }), refusedOn("products", /needs at least one product, classification or title filter/));
    await assert.rejects(adrs.edit("Windows 11 monthly", { name: " " }), refusedOn("name", /must not be empty/));
    await assert.rejects(adrs.edit("Windows 11 monthly", { name: "Servers" }), (x: unknown) => x instanceof OpenCmgError && x.code === "CONFLICT" && /already exists/.test(x.message));
    await assert.rejects(adrs.edit("Nope", { products: ["Windows 11"] }), (x: unknown) => x instanceof OpenCmgError && x.code === "NOT_FOUND");
    assert.deepEqual((await adrs.get("Windows 11 monthly")).products, ["Windows 11"], "nothing changed by a refused edit");

    // Each change audited, the rename with the rule before (old name) and after (new name).
    const audit = (await site.services.audit.list({ limit: 50 })).items.filter((a) => a.action === "adrs.edit");
    const rename = audit.find((a) => (a.before as { name?: string } | null)?.name === "Windows 11");
    assert.ok(rename, "the rename is audited");
    assert.equal(rename.object, "adr/Windows 11");
    assert.equal((rename.after as { name: string }).name, "Windows 11 monthly");
  });

  it("disables a rule (it does not run, now or after a synchronisation) and enables it again; a read-only actor may do neither", async () => {
    const site = await siteWithSup();
    await site.services.adrs.add({ name: "Windows 11", server: SUP, products: ["Windows 11"], runAfterSync: true });
    const off = await site.services.adrs.setEnabled("Windows 11", false);
    assert.equal(off.enabled, false);
    assert.deepEqual(await site.services.adrs.runAfterSync(SUP), []);
    await assert.rejects(adrRunner(site).run("Windows 11"), (e: unknown) => e instanceof OpenCmgError && e.code === "ADR_DISABLED" && /is disabled; enable it first/.test(e.message));
    const synced = await siteOperations(site, site.actor).supSync(SUP);
    assert.deepEqual(synced.rulesRun, [], "a disabled rule does not run after the synchronisation");
    assert.equal((await site.services.adrs.setEnabled("Windows 11", true)).enabled, true);
    assert.deepEqual((await site.services.adrs.runAfterSync(SUP)).map((a) => a.name), ["Windows 11"]);
    const analyst = site.servicesAs({ name: "analyst", via: "token", readOnly: true, role: "read-only-analyst" });
    await assert.rejects(analyst.adrs.setEnabled("Windows 11", false), (e: unknown) => e instanceof OpenCmgError && e.code === "FORBIDDEN");
    await assert.rejects(analyst.adrs.remove("Windows 11"), (e: unknown) => e instanceof OpenCmgError && e.code === "FORBIDDEN");
    const actions = (await site.services.audit.list({ limit: 50 })).items.map((a) => `${a.action} ${a.object}`);
    assert.ok(actions.includes("adrs.setEnabled adr/Windows 11"));
  });

  it("runs the enabled run-after-sync rules after a successful synchronisation (not the others) and deletes a rule with its recorded results", async () => {
    const site = await siteWithSup();
    const adrs = site.services.adrs;
    await adrs.add({ name: "After sync", server: SUP, products: ["Windows 11"], runAfterSync: true });
    await adrs.add({ name: "Only when asked", server: SUP, products: ["Windows 11"] });
    const served = net.requests().filter((r) => r.path === "/content/win11.cab").length;
    const r = await siteOperations(site, site.actor).supSync(SUP);
    assert.equal(r.updates, 2);
    assert.deepEqual(r.rulesRun, [{ rule: "After sync", matched: 1, files: 1, failed: 0 }]);
    assert.equal(net.requests().filter((x) => x.path === "/content/win11.cab").length, served + 1, "the stand-in served the rule's file");
    assert.deepEqual((await adrs.results("After sync")).map((f) => [f.file, f.status]), [["win11.cab", "downloaded"]]);
    assert.deepEqual(await adrs.results("Only when asked"), []);

    const gone = await adrs.remove("After sync");
    assert.equal(gone.resultsDeleted, 1);
    assert.equal(await adrs.find("After sync"), undefined);
    assert.deepEqual(
      (await site.database.db.selectFrom("adr_downloads").select("adr_id").execute()).map((x) => x.adr_id),
      [],
      "its recorded results are deleted with it",
    );
    await assert.rejects(adrs.remove("After sync"), (e: unknown) => e instanceof OpenCmgError && e.code === "NOT_FOUND");
    const audited = (await site.services.audit.list({ limit: 50 })).items.find((a) => a.action === "adrs.remove");
    assert.equal((audited?.before as { name: string }).name, "After sync");
    assert.equal(audited?.after, null);
  });

  it("validates the synchronisation schedule naming the field and the rule; off by default, null turns it off", async () => {
    const site = await siteWithSup();
    const roles = site.services.roles;
    const deps = { roles, status: site.services.status, now: () => clock };
    assert.deepEqual(await syncSchedule(deps, SUP), { server: SUP, syncIntervalHours: null, lastSync: null, nextSync: null });
    await assert.rejects(roles.set(SUP, "software-update-point", { syncIntervalHours: 0 }), refusedOn("syncIntervalHours", /must be at least 1 hour/));
    await assert.rejects(roles.set(SUP, "software-update-point", { syncIntervalHours: 721 }), refusedOn("syncIntervalHours", /must be at most 720 hours/));
    await assert.rejects(roles.set(SUP, "software-update-point", { syncIntervalHours: 1.5 }), refusedOn("syncIntervalHours", /whole number of hours/));
    await assert.rejects(roles.set(SUP, "software-update-point", { syncIntervalHours: Number.NaN }), refusedOn("syncIntervalHours", /must be a number of hours/));
    await assert.rejects(roles.set(SUP, "software-update-point", { syncIntervalHours: "6" as never }), refusedOn("syncIntervalHours", /must be a number of hours/));
    await site.services.servers.add({ fqdn: "mp01.contoso.com" });
    await roles.add("mp01.contoso.com", "management-point", {});
    await assert.rejects(roles.set("mp01.contoso.com", "management-point", { syncIntervalHours: 6 }), refusedOn("syncIntervalHours", /applies only to software-update-point/));
    assert.equal((await syncSchedule(deps, SUP)).syncIntervalHours, null, "nothing saved");

    await roles.set(SUP, "software-update-point", { syncIntervalHours: 6 });
    assert.deepEqual(await syncSchedule(deps, SUP), { server: SUP, syncIntervalHours: 6, lastSync: null, nextSync: clock.toISOString() });
    await roles.set(SUP, "software-update-point", { syncIntervalHours: null });
    assert.equal((await syncSchedule(deps, SUP)).nextSync, null);
    const audited = (await site.services.audit.list({ limit: 50 })).items.filter((a) => a.action === "roles.set").map((a) => (a.after as { settings: { syncIntervalHours?: number | null } }).settings.syncIntervalHours);
    assert.deepEqual(audited, [null, 6], "each change audited, newest first");
  });

  it("synchronises on the schedule when due (a tick driven by the test, the clock moved), then runs the run-after-sync rules", async () => {
    clock = new Date("2026-12-01T08:00:00Z");
    const site = await siteWithSup();
    await site.services.adrs.add({ name: "After sync", server: SUP, products: ["Windows 11"], runAfterSync: true });
    const log = site.logs.component(LOG_FILES.wsyncmgr);
    const ran: unknown[] = [];
    const tick = {
      roles: site.services.roles,
      status: site.services.status,
      now: () => clock,
      log,
      sync: async (fqdn: string) => ran.push(await siteOperations(site, { name: "software update point schedule", via: "schedule" }).supSync(fqdn)),
    };
    assert.deepEqual(await runDueSyncs(tick), [], "off: nothing synchronises");
    await site.services.roles.set(SUP, "software-update-point", { syncIntervalHours: 6 });
    const before = catalogRequests();
    assert.deepEqual(await runDueSyncs(tick), [SUP], "never synchronised: due at once");
    assert.equal(catalogRequests(), before + 1);
    assert.deepEqual((ran[0] as { rulesRun: unknown[] }).rulesRun, [{ rule: "After sync", matched: 1, files: 1, failed: 0 }]);
    const s = await syncSchedule(tick, SUP);
    assert.equal(s.lastSync?.succeeded, true);
    assert.equal(s.lastSync?.time, clock.toISOString());
    assert.equal(s.nextSync, new Date(clock.getTime() + 6 * HOUR).toISOString());

    clock = new Date(clock.getTime() + 6 * HOUR - 1000);
    assert.deepEqual(await runDueSyncs(tick), [], "not yet due");
    clock = new Date(clock.getTime() + 1000);
    assert.deepEqual(await runDueSyncs(tick), [SUP], "due after the interval");
    assert.equal(catalogRequests(), before + 2);
    const audit = (await site.services.audit.list({ limit: 50 })).items.filter((a) => a.actor === "software update point schedule").map((a) => a.action);
    assert.deepEqual(audit, ["adrs.run", "sup.sync", "adrs.run", "sup.sync"]);
  });
});
