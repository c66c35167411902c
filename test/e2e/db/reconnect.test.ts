/**
 * A PostgreSQL connection the server ends (a restart, a failover, pg_terminate_backend) while a
 * transaction holds it must not end the process: the transaction fails with its own error, the
 * next query connects again, and smsprov.log says once that the connection was lost and once that
 * it is back. (Before, the pool listened for errors of idle connections only: the error event of
 * a connection held by a transaction was unhandled, and `site serve` died with PostgreSQL's
 * restart: test/e2e/deploy/ha-multihost.test.ts.)
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { sql } from "kysely";
import pg from "pg";
import { initSite, openSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.ts";
import { until } from "../../helpers/until.ts";

let pgc: TestPostgres;
before(async () => {
  pgc = await startPostgres();
});
after(async () => {
  await pgc?.stop();
});

/** Ends every session of `work` (its application_name) from another connection, as an administrator does. */
async function terminate(url: string, work: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ ended: boolean }>("select pg_terminate_backend(pid) as ended from (select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid() offset 0) s", [work]);
    return r.rows.filter((x) => x.ended).length;
  } finally {
    await c.end();
  }
}

it("survives the server ending a connection a transaction holds, connects again, and logs it once each way", async () => {
  const url = await pgc.createDatabase();
  const dataDir = tempDir();
  const work = `opencmg reconnect-test-${process.pid}`;
  const site = await openSite({ dataDir, databaseUrl: url, work: work.slice("opencmg ".length) });
  try {
    await initSite(site, { code: "P01", name: "E2E" });
    const db = site.database.db;
    // Between two statements of a transaction the connection is held, with no query under way.
    await assert.rejects(
      db.transaction().execute(async (tx) => {
        await sql`select 1`.execute(tx);
        assert.ok((await terminate(url, work)) >= 1, "the held connection was ended");
        await until("the ended connection to be noticed", () => readLog(dataDir).includes("was lost"));
        await sql`select 1`.execute(tx);
      }),
    );
    // Idle connections ended too: the pool drops them; the next query connects again.
    await terminate(url, work);
    const servers = await site.services.servers.list();
    assert.deepEqual(servers, []);
    await until("the reconnection to be logged", () => readLog(dataDir).includes("again"));
    const lines = readLog(dataDir).split("\n").filter((l) => l.includes("site database"));
    assert.equal(lines.filter((l) => /connection to the site database postgres:\/\/\S+ was lost \(57P01: terminating connection due to administrator command\)/.test(l)).length, 1, lines.join("\n"));
    assert.equal(lines.filter((l) => /connected to the site database \S+ again/.test(l)).length, 1, lines.join("\n"));
  } finally {
    await site.close();
  }
});

function readLog(dataDir: string): string {
  try {
    return readFileSync(join(dataDir, "logs", "smsprov.log"), "utf8");
  } catch {
    return "";
  }
}
