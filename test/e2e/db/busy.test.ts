/**
 * A writer that cannot get the write lock in time fails with DATABASE_BUSY (exit 1), saying that
 * nothing changed and to retry, and naming the other writer's work where the database tells it
 * (PostgreSQL). The holder keeps its lock until the check is done, so no timing is involved; the
 * waiting side is opened with a short busy timeout to keep the test quick.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { sql } from "kysely";
import { DatabaseBusyError } from "../../../src/errors.ts";
import { openDatabase } from "../../../src/site/db/connect.ts";
import { writeTransaction } from "../../../src/site/db/transaction.ts";
import { forEachDatabase } from "../../helpers/databases.ts";

forEachDatabase("a writer kept waiting too long", (tdb) => {
  it("gets DATABASE_BUSY, naming the other writer's work when known", async () => {
    const { dataDir, databaseUrl } = await tdb.fresh();
    const sqlitePath = join(dataDir, "site.db");
    const holder = await openDatabase({ databaseUrl, sqlitePath, work: "site serve" });
    const waiter = await openDatabase({ databaseUrl, sqlitePath, work: "server add", busyTimeoutMs: 300 });
    try {
      await holder.db.insertInto("sites").values({ code: "P01", name: "P", type: "primary", parent_code: null, created_at: "now" }).execute();
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const held = writeTransaction(holder.db, async (tx) => {
        if (holder.dialect === "postgres") await sql`lock table servers in exclusive mode`.execute(tx);
        locked();
        await released;
      });
      await isLocked;
      const add = writeTransaction(waiter.db, (tx) => tx.insertInto("servers").values({ fqdn: "a.contoso.com", site_code: "P01", is_site_server: 0, created_at: "now" }).execute());
      const e = await add.then(() => undefined, (x: unknown) => x);
      release();
      await held;
      assert.ok(e instanceof DatabaseBusyError, String(e));
      assert.equal(e.code, "DATABASE_BUSY");
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /nothing was changed, retry the command/);
      if (holder.dialect === "postgres") assert.match(e.message, /opencmg site serve/);
      assert.equal((await waiter.db.selectFrom("servers").select("fqdn").execute()).length, 0);
    } finally {
      await waiter.close();
      await holder.close();
    }
  });
});
