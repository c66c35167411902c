/**
 * The primary site's Client Computer Communication settings: defaults, validation where they enter,
 * a primary site only, audited changes, and a Full Administrator only. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { ForbiddenError, ValidationError } from "../../errors.ts";
import { initSite, openSite } from "../site.ts";
import { forEachDatabase } from "../../../test/helpers/databases.ts";

forEachDatabase("site client computer communication", (tdb) => {
  it("defaults to both on, changes the given ones, refuses bad input by field, and audits each change", async () => {
    const { dataDir, databaseUrl } = await tdb.fresh();
    const site = await openSite({ dataDir, databaseUrl });
    try {
      await initSite(site, { code: "CAS", name: "Central", type: "cas" });
      await site.services.sites.add({ code: "P01", name: "Primary", type: "primary", parentCode: "CAS" });
      const sites = site.services.sites;
      assert.deepEqual(await sites.clientCommunication("P01"), { usePkiClientCertificate: true, clientsCheckCrl: true });

      assert.deepEqual(await sites.setClientCommunication("p01", { clientsCheckCrl: false }), { usePkiClientCertificate: true, clientsCheckCrl: false });
      assert.deepEqual(await sites.setClientCommunication("P01", { usePkiClientCertificate: false }), { usePkiClientCertificate: false, clientsCheckCrl: false });
      assert.deepEqual(await sites.clientCommunication("P01"), { usePkiClientCertificate: false, clientsCheckCrl: false });

      await assert.rejects(sites.setClientCommunication("P01", { clientsCheckCrl: "no" }), (e: unknown) => e instanceof ValidationError && e.field === "clientsCheckCrl" && /true or false/.test(e.message));
      await assert.rejects(sites.setClientCommunication("P01", { checkCrl: false }), (e: unknown) => e instanceof ValidationError && /checkCrl/.test(e.message));
      await assert.rejects(sites.setClientCommunication("CAS", { clientsCheckCrl: false }), (e: unknown) => e instanceof ValidationError && e.field === "siteCode" && /primary site/.test(e.message));
      await assert.rejects(sites.clientCommunication("ZZZ"), /site ZZZ/);

      const audit = await site.services.audit.list({ action: "sites.setClientCommunication" });
      assert.equal(audit.items.length, 2, "one record per change that was made");
      const last = audit.items[0]!;
      assert.equal(last.object, "site/P01/client-communication");
      assert.deepEqual(last.before, { usePkiClientCertificate: true, clientsCheckCrl: false });
      assert.deepEqual(last.after, { usePkiClientCertificate: false, clientsCheckCrl: false });

      // Turning the checks off weakens how clients trust site systems: a Full Administrator's change.
      const infra = site.servicesAs({ name: "infra", via: "api", role: "infrastructure-administrator" });
      await assert.rejects(infra.sites.setClientCommunication("P01", { clientsCheckCrl: true }), (e: unknown) => e instanceof ForbiddenError);
      const analyst = site.servicesAs({ name: "analyst", via: "api", role: "read-only-analyst", readOnly: true });
      await assert.rejects(analyst.sites.setClientCommunication("P01", { clientsCheckCrl: true }), (e: unknown) => e instanceof ForbiddenError);
      assert.deepEqual(await analyst.sites.clientCommunication("P01"), { usePkiClientCertificate: false, clientsCheckCrl: false });
    } finally {
      await site.close();
    }
  });
});
