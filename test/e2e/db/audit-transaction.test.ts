/**
 * A change and its audit record are one transaction, on SQLite and PostgreSQL: an audit record the
 * database refuses rolls the change back, and a change that fails part-way leaves none of its
 * writes and no record. The database itself is made to refuse (a trigger), as a full disk or a
 * lost connection would.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { sql } from "kysely";
import type { OpenedSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { createTestCmg, openTestSite } from "../../helpers/site.ts";

/** Makes every `op` (INSERT, DELETE) on `table` fail until `allow` is called. */
async function refuse(site: OpenedSite, kind: string, table: string, op: "INSERT" | "DELETE"): Promise<() => Promise<void>> {
  const db = site.database.db;
  const name = `refuse_${table}_${op.toLowerCase()}`;
  if (kind === "sqlite") {
    await sql.raw(`CREATE TRIGGER ${name} BEFORE ${op} ON ${table} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`).execute(db);
    return async () => void (await sql.raw(`DROP TRIGGER ${name}`).execute(db));
  }
  await sql.raw(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`).execute(db);
  await sql.raw(`CREATE TRIGGER ${name} BEFORE ${op} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`).execute(db);
  return async () => void (await sql.raw(`DROP TRIGGER ${name} ON ${table}; DROP FUNCTION ${name}()`).execute(db));
}

forEachDatabase("a change and its audit record in one transaction", (db) => {
  const open: OpenedSite[] = [];
  after(async () => {
    for (const s of open) await s.close();
  });
  const start = async () => {
    const site = await openTestSite(db);
    open.push(site);
    return site;
  };
  const actions = async (site: OpenedSite): Promise<string[]> => (await site.services.audit.list({ limit: 1000 })).items.map((e) => `${e.action} ${e.object}`);

  it("an audit record the database refuses rolls the change back, and says so in smsprov.log", async () => {
    const site = await start();
    const allow = await refuse(site, db.kind, "audit_log", "INSERT");
    await assert.rejects(site.services.servers.add({ fqdn: "srv01.contoso.com" }), /refused by the test/);
    await assert.rejects(site.services.accounts.add("svc", "svc", "S3cret-1"), /refused by the test/);
    await allow();
    assert.deepEqual(await site.services.servers.list(), [], "the server was not added");
    assert.deepEqual(await site.services.accounts.list(), [], "the account was not added");
    assert.deepEqual((await actions(site)).filter((a) => !a.startsWith("sites.") && !a.startsWith("adminTokens.")), []);
    const log = readFileSync(join(site.paths.logs, "smsprov.log"), "utf8");
    assert.match(log, /Audit entry not stored, the change is rolled back \(.*refused by the test.*servers\.add server\/srv01\.contoso\.com/);
    assert.ok(!log.includes("S3cret-1"), "the password is not in the log line");
    // With the database accepting records again, the same change is made and recorded.
    await site.services.servers.add({ fqdn: "srv01.contoso.com" });
    assert.deepEqual((await site.services.servers.list()).map((s) => s.fqdn), ["srv01.contoso.com"]);
    assert.ok((await actions(site)).includes("servers.add server/srv01.contoso.com"));
  });

  it("a change that fails part-way (a CMG removed with its connection point role) leaves none of its writes and no record", async () => {
    const site = await start();
    await createTestCmg(site, "cmg1");
    await site.services.servers.add({ fqdn: "cp01.contoso.test" });
    await site.services.roles.add("cp01.contoso.test", "cmg-connection-point", { cmgName: "cmg1" });
    const before = await actions(site);
    // The last statement of the removal fails: the CMG's row cannot be deleted.
    const allow = await refuse(site, db.kind, "cmgs", "DELETE");
    await assert.rejects(site.services.cmgs.remove("cmg1"), /refused by the test/);
    await allow();
    const cmg = await site.services.cmgs.show("cmg1");
    assert.equal(cmg.runState, "running", "not left half-deleted");
    assert.deepEqual(cmg.connectionPointServers, ["cp01.contoso.test"], "its connection point role is still there");
    assert.deepEqual((await site.services.roles.list("cp01.contoso.test")).map((r) => r.kind), ["cmg-connection-point"]);
    assert.deepEqual(await actions(site), before, "no audit record of a change that was not made");
    // Once the database lets it, the removal is whole and recorded once.
    await site.services.cmgs.remove("cmg1");
    assert.equal(await site.services.cmgs.exists("cmg1"), false);
    assert.deepEqual(await site.services.roles.list("cp01.contoso.test"), []);
    assert.deepEqual((await actions(site)).slice(0, 1), ["cmgs.remove cmg/cmg1"]);
  });
});
