/**
 * The CMG traffic summary on SQLite and PostgreSQL: totals, the series per UTC day (empty days
 * included), the breakdowns per instance, connection point and role kind, the series per day and
 * role kind (the console's chart), the 14-day outbound total, and `days` validated with the field named.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { ValidationError } from "../../../src/errors.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { createTestCmg } from "../../helpers/site.ts";

const DAY = 24 * 3600 * 1000;

forEachDatabase("CMG traffic summary", (tdb) => {
  it("sums per day, instance, connection point and role kind", async () => {
    let clock = Date.now();
    const site = await openSite({ ...(await tdb.fresh()), now: () => new Date(clock) });
    try {
      await initSite(site, { code: "P01", name: "Test" });
      await createTestCmg(site, "cmg1");
      // Noon tomorrow (UTC), so that "two days ago" and "today" are whole days apart whatever the hour.
      const today = new Date(clock + DAY);
      clock = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 12);
      const day = (ago: number) => new Date(clock - ago * DAY).toISOString().slice(0, 10);
      const t = site.services.cmgTraffic;
      const row = (instance: number | null, roleKind: string, out: number, inb: number, requests = 1) => ({ instance, roleKind, requests, failed: 0, bytesToClients: out, bytesFromClients: inb });
      // 20 days ago: outside the 14-day window and the 3-day view.
      clock -= 20 * DAY;
      await t.record("cmg1", "cp01", [row(0, "mp", 5000, 0)]);
      clock += 18 * DAY; // two days ago
      await t.record("CMG1", "cp01", [row(0, "mp", 100, 10), row(1, "sup", 200, 20), row(1, "tunnel", 7, 3, 0)]);
      clock += 2 * DAY; // today
      await t.record("cmg1", "cp02", [row(0, "mp", 1000, 1), row(0, "sup", 0, 0, 0)]);
      const s = await t.summary("cmg1", "3");
      assert.deepEqual(s.perDay.map((d) => [d.day, d.bytesToClients]), [[day(2), 307], [day(1), 0], [day(0), 1000]]);
      assert.deepEqual(s.total, { requests: 3, failed: 0, bytesToClients: 1307, bytesFromClients: 34 });
      assert.deepEqual(s.byInstance.map((i) => [i.instance, i.bytesToClients, i.bytesFromClients]), [[0, 1100, 11], [1, 207, 23]]);
      assert.deepEqual(s.byConnectionPoint.map((c) => [c.connectionPoint, c.bytesToClients]), [["cp01", 307], ["cp02", 1000]]);
      assert.deepEqual(s.byRoleKind.map((k) => [k.roleKind, k.requests, k.bytesToClients]), [["mp", 2, 1100], ["sup", 1, 200], ["tunnel", 0, 7]], "an empty row is not written");
      // The chart per role: every day of the range for each kind, empty days as zeros; the two days' mp rows apart.
      assert.deepEqual(
        s.perDayByRoleKind.map((d) => [d.day, d.roleKind, d.requests, d.bytesToClients, d.bytesFromClients]),
        [
          [day(2), "mp", 1, 100, 10],
          [day(2), "sup", 1, 200, 20],
          [day(2), "tunnel", 0, 7, 3],
          [day(1), "mp", 0, 0, 0],
          [day(1), "sup", 0, 0, 0],
          [day(1), "tunnel", 0, 0, 0],
          [day(0), "mp", 1, 1000, 1],
          [day(0), "sup", 0, 0, 0],
          [day(0), "tunnel", 0, 0, 0],
        ],
      );
      assert.equal(s.outbound14Days, 1307, "the row 20 days old is outside the window");
      assert.equal((await t.summary("cmg1", 30)).total.bytesToClients, 6307);
      for (const bad of ["0", "91", "1.5", "two"]) await assert.rejects(t.summary("cmg1", bad), (e: unknown) => e instanceof ValidationError && e.field === "days", bad);
    } finally {
      await site.close();
    }
  });
});
