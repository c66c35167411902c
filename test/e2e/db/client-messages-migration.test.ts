/**
 * Migration 0014 on a site that already holds clients' messages and clients sharing a name: the
 * uploader's ID moves to `client_id` (source becomes "client"), a time claimed beyond the upgrade
 * is brought back to it, and of two clients with one name the oldest keeps it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import Database from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { MIGRATIONS } from "../../../src/site/db/migrations/index.ts";
import { tempDir } from "../../helpers/databases.ts";
import { openSite } from "../../../src/site/site.ts";

it("0014 moves clients' messages apart from the site's and keeps one holder per client name", async () => {
  const dataDir = tempDir("opencmg-m0014-");
  const sqlite = new Database(join(dataDir, "site.db"));
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
  const provider = { getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([k, f]) => [k, f("sqlite")])) };
  const before = await new Migrator({ db, provider }).migrateTo("0011_admin_audit");
  assert.equal(before.error, undefined);
  const msg = { message_id: 10002, severity: "error", component: "CcmExec", text: "t", properties: "{}", dedupe_key: null };
  await db.insertInto("status_messages").values([
    { ...msg, server: "site01", time: "2026-01-01T00:00:00.000Z", source: "site" },
    { ...msg, server: "site.opencmg.local", time: "2099-01-01T00:00:00.000Z", source: "GUID:00000000-0000-0000-0000-000000000001" },
  ]).execute();
  const client = (id: string, name: string) => ({ id, name, thumbprint: null, subject: null, token_sha256: null, approved: 1, always_internet: 0, last_contact_at: null, connection_type: null, registered_at: "2026-01-01T00:00:00.000Z", token_jkt: null, directory_id: null, blocked: 0, blocked_at: null });
  await db.insertInto("clients").values([client("GUID:00000000-0000-0000-0000-000000000001", "PC-1"), client("GUID:00000000-0000-0000-0000-000000000002", "pc-1")]).execute();
  await db.destroy();

  const upgradeTime = new Date().toISOString();
  const site = await openSite({ dataDir });
  try {
    const msgs = await site.services.status.messages();
    assert.deepEqual(msgs.map((m) => [m.source, m.clientId, m.claimedTime]), [["site", null, null], ["client", "GUID:00000000-0000-0000-0000-000000000001", "2099-01-01T00:00:00.000Z"]]);
    assert.ok(msgs[1]!.time >= upgradeTime && msgs[1]!.time < "2099", msgs[1]!.time);
    const clients = await site.services.clients.list();
    assert.deepEqual(clients.map((c) => c.name), ["PC-1", "pc-1"], "both keep their names");
    const keys = await site.ctx.db.selectFrom("clients").select(["id", "name_key"]).orderBy("id").execute();
    assert.deepEqual(keys.map((k) => k.name_key), ["pc-1", null], "the oldest holds the name");
  } finally {
    await site.close();
  }
});
