import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { LiveFeed, type LiveTopic } from "./live.ts";
import { until } from "../../test/helpers/until.ts";

const root = mkdtempSync(join(tmpdir(), "opencmg-live-"));
let site: OpenedSite;
before(async () => {
  site = await openSite({ dataDir: root });
  await initSite(site, { code: "P01", name: "Test" });
});
after(async () => {
  await site.close();
  rmSync(root, { recursive: true, force: true });
});

it("a component changing state and a new status message reach the listeners as one 'status' notice each", async () => {
  const feed = new LiveFeed(site, { pollMs: 0, coalesceMs: 10 });
  const seen: LiveTopic[] = [];
  const off = feed.listen((t) => seen.push(t));
  await site.services.status.setComponent("s1", "SMS_X", "Critical", "down");
  await until("the component notice", () => seen.length === 1);
  await site.services.status.setComponent("s1", "SMS_X", "Critical", "still down");
  await site.services.status.raise({ messageId: 1, severity: "error", component: "SMS_X", server: "s1", text: "x" });
  await until("the message notice", () => seen.length === 2);
  assert.deepEqual(seen, ["status", "status"], "an unchanged state sends nothing");
  off();
  await site.services.status.setComponent("s1", "SMS_X", "OK", "up");
  feed.close();
  assert.equal(seen.length, 2, "nothing after unsubscribing");
});

it("a change written by another process is noticed by the fingerprint poll", async () => {
  const feed = new LiveFeed(site, { pollMs: 50, coalesceMs: 10 });
  const seen: LiveTopic[] = [];
  feed.listen((t) => seen.push(t));
  // Written as another process would (straight to the table, no channel): a new row on every check,
  // so a poll after the first one (which only takes the fingerprint) sees a change.
  let n = 0;
  await until("the polled notice", async () => {
    if (seen.includes("status")) return true;
    await site.database.db.insertInto("component_status").values({ server: "s2", component: `SMS_Y${n++}`, status: "Warning", reason: "r", updated_at: new Date().toISOString() }).execute();
    return false;
  });
  feed.close();
});
