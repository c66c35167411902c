/**
 * A CMG's client certificate policy as an administrator sets it (`cmg create|update --min-rsa-bits`):
 * validated where it enters, shown, and pushed to the instances in the settings. On SQLite and
 * PostgreSQL.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { ValidationError } from "../../../src/errors.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";

forEachDatabase("CMG client certificate policy", (tdb) => {
  it("defaults to 2048 bits, refuses weaker or absurd values by field, and reaches the instances when stricter", async () => {
    const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
    const { dataDir, databaseUrl } = await tdb.fresh();
    const site = await openSite({ dataDir, databaseUrl });
    try {
      await initSite(site, { code: "P01", name: "E2E" });
      const cmgs = site.services.cmgs;
      const base = { serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem] };
      await assert.rejects(cmgs.create({ name: "weak", ...base, minRsaBits: 1024 }), (e: unknown) => e instanceof ValidationError && e.field === "minRsaBits" && /at least 2048/.test(e.message));
      await assert.rejects(cmgs.create({ name: "odd", ...base, minRsaBits: "lots" }), (e: unknown) => e instanceof ValidationError && e.field === "minRsaBits");

      await cmgs.create({ name: "cmg1", ...base });
      assert.equal((await cmgs.show("cmg1")).minRsaBits, 2048);
      assert.equal((await cmgs.gatewaySettings("cmg1")).clientCertPolicy, undefined, "the built-in floor needs no policy");

      const before = (await cmgs.gatewaySettings("cmg1")).revision;
      await cmgs.update("cmg1", { minRsaBits: "3072" });
      assert.equal((await cmgs.show("cmg1")).minRsaBits, 3072);
      const settings = await cmgs.gatewaySettings("cmg1");
      assert.deepEqual(settings.clientCertPolicy, { minRsaBits: 3072 });
      assert.ok(settings.revision > before, "a new revision carries the change to the instances");
      await assert.rejects(cmgs.update("cmg1", { minRsaBits: 99999 }), (e: unknown) => e instanceof ValidationError && e.field === "minRsaBits");
    } finally {
      await site.close();
    }
  });
});
