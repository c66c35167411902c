import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openSite, type OpenedSite } from "../site.ts";

describe("site settings", () => {
  const root = mkdtempSync(join(tmpdir(), "opencmg-settings-"));
  let site: OpenedSite;
  before(async () => {
    site = await openSite({ dataDir: root });
  });
  after(async () => {
    await site.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("lists every setting with its default before anything is set", async () => {
    const list = await site.services.settings.list();
    const byKey = Object.fromEntries(list.map((v) => [v.key, v]));
    assert.equal(byKey["endpoint-check-interval"]?.value, "1h");
    assert.equal(byKey["traffic-report-interval"]?.value, "5m");
    assert.equal(byKey["client-location-interval"]?.value, "1d");
    assert.equal(byKey["client-policy-interval"]?.value, "1h");
    assert.ok(list.every((v) => v.isDefault));
  });

  it("stores a value in its normalized form and reads it back as milliseconds", async () => {
    const v = await site.services.settings.set("traffic-report-interval", "120s");
    assert.equal(v.value, "2m");
    assert.equal(v.isDefault, false);
    assert.equal(await site.services.settings.durationMs("traffic-report-interval"), 120_000);
    const back = await site.services.settings.reset("traffic-report-interval");
    assert.equal(back.value, "5m");
    assert.equal(back.isDefault, true);
  });

  it("turns the endpoint check off with `off`, and only settings that allow it", async () => {
    await site.services.settings.set("endpoint-check-interval", "OFF");
    assert.equal(await site.services.settings.durationMs("endpoint-check-interval"), null);
    await assert.rejects(site.services.settings.set("traffic-report-interval", "off"), /traffic-report-interval: must be a duration .* from 1s to 1h/);
  });

  it("refuses a value out of range, naming the key and the rule", async () => {
    await assert.rejects(site.services.settings.set("endpoint-check-interval", "10s"), (e: Error & { field?: string }) => {
      assert.equal(e.field, "endpoint-check-interval");
      assert.match(e.message, /from 1m to 1d, or off \(got "10s"\)/);
      return true;
    });
    await assert.rejects(site.services.settings.set("client-policy-interval", "90s"), /in whole minutes/);
    await assert.rejects(site.services.settings.set("traffic-report-interval", 5 as unknown as string), /must be text/);
  });

  it("refuses an unknown key, listing the known ones", async () => {
    await assert.rejects(site.services.settings.get("traffic-report-intervall"), (e: Error & { field?: string }) => {
      assert.equal(e.field, "key");
      assert.match(e.message, /must be one of endpoint-check-interval, .*traffic-report-interval/);
      return true;
    });
  });

  it("keeps one value for the client intervals: the policy the management points hand out", async () => {
    await site.services.settings.set("client-location-interval", "12h");
    assert.equal((await site.services.clients.settings()).locationIntervalMinutes, 720);
    await site.services.clients.setSettings({ policyIntervalMinutes: 30 });
    assert.equal((await site.services.settings.get("client-policy-interval")).value, "30m");
  });
});
