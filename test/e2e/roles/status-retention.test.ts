/**
 * Delete Aged Status Messages: `opencmg site serve` (a real process) deletes status messages older
 * than the site setting status-message-retention (days), on its schedule, in batches, and reads the
 * setting again at each run.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { runCli } from "../../helpers/cli.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";
import { openSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";

const DAY = 24 * 60 * 60_000;
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

forEachDatabase("status retention", (db) => {
  it("site serve deletes status messages older than the retention, in batches, and follows a changed retention", async () => {
    const { dataDir: data, databaseUrl } = await db.fresh();
    const where = ["--data", data, ...(databaseUrl ? ["--database", databaseUrl] : [])];
    const cli = (args: string[]) => runCli([...where, ...args]);
    assert.equal((await cli(["site", "init"])).code, 0);
    // 2,500 messages 40 days old (more than two batches), one 20 days old, one of today.
    const site = await openSite({ dataDir: data, databaseUrl });
    try {
      const raise = (time: Date, text: string) => site.services.status.raise({ messageId: 4000, severity: "informational", component: "SMS_TEST", server: "site01.contoso.test", text, time: time.toISOString() });
      for (let i = 0; i < 2500; i++) await raise(new Date(Date.now() - 40 * DAY - i * 1000), "aged");
      await raise(new Date(Date.now() - 20 * DAY), "twenty days");
      await raise(new Date(), "today");
    } finally {
      await site.close();
    }
    assert.equal((await cli(["settings", "set", "status-cleanup-interval", "1s"])).code, 0);
    assert.equal((await cli(["settings", "set", "status-message-retention", "0"])).code, 2, "at least one day");
    const texts = async () => ((await cli(["status", "messages", "--json", "--limit", "100000"])).json() as { text: string }[]).map((m) => m.text);

    const child = spawn(process.execPath, [OPENCMG_BIN, ...where, "site", "serve", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENCMG_DATA: "", OPENCMG_ENDPOINT_CHECK_INTERVAL: "0" } });
    children.add(child);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => (children.delete(child), r(code))));
    try {
      // The default retention, 30 days.
      await until("the aged messages to be deleted", async () => !(await texts()).includes("aged"));
      assert.deepEqual((await texts()).sort(), ["today", "twenty days"]);
      const statmgr = () => readFileSync(join(data, "logs", "statmgr.log"), "utf8");
      assert.match(statmgr(), /Deleted 2500 status message\(s\) older than 30 day\(s\)/);

      assert.equal((await cli(["settings", "set", "status-message-retention", "10"])).code, 0);
      await until("the 20-day-old message to be deleted", async () => !(await texts()).includes("twenty days"));
      assert.deepEqual(await texts(), ["today"]);
      assert.match(statmgr(), /Deleted 1 status message\(s\) older than 10 day\(s\)/);
    } finally {
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
    }
  });
});
