/**
 * Migration 0017 on a site that already has named admin tokens: a read-only token becomes a
 * Read-only Analyst (its changes refused), any other a Full Administrator.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import Database from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { MIGRATIONS } from "../../../src/site/db/migrations/index.ts";
import { tempDir } from "../../helpers/databases.ts";
import { openSite } from "../../../src/site/site.ts";

it("0017 gives read-only tokens the Read-only Analyst role and the others Full Administrator", async () => {
  const dataDir = tempDir("opencmg-m0017-");
  const sqlite = new Database(join(dataDir, "site.db"));
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
  const provider = { getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([k, f]) => [k, f("sqlite")])) };
  assert.equal((await new Migrator({ db, provider }).migrateTo("0016_join_tokens")).error, undefined);
  const token = (name: string, readOnly: number, sha: string) => ({ name, token_sha256: sha, read_only: readOnly, created_at: "2026-01-01T00:00:00.000Z", revoked_at: null });
  await db.insertInto("admin_tokens").values([token("admin", 0, "a".repeat(64)), token("auditor", 1, "b".repeat(64)), token("ops", 0, "c".repeat(64))]).execute();
  await db.destroy();

  const site = await openSite({ dataDir });
  try {
    const list = await site.services.adminTokens.list();
    assert.deepEqual(list.map((t) => [t.name, t.role, t.readOnly]), [["admin", "full-administrator", false], ["auditor", "read-only-analyst", true], ["ops", "full-administrator", false]]);
    assert.deepEqual(await site.services.adminUsers.list(), []);
  } finally {
    await site.close();
  }
});
