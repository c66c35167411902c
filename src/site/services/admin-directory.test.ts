/**
 * The administrators' directory settings: each value checked where it enters (the error names the
 * setting and its rule), and the client secret sealed with the site key: never in the setting's
 * view, the audit log, the logs or the database in clear.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { initSite, openSite, type OpenedSite } from "../site.ts";
import { adminDirectoryConfig } from "./admin-directory.ts";

const SECRET = "s3cr3t-client-value-9d2f";
const root = mkdtempSync(join(tmpdir(), "opencmg-admin-directory-"));
let site: OpenedSite;

before(async () => {
  site = await openSite({ dataDir: root });
  await initSite(site, { code: "P01", name: "Test" });
});
after(async () => {
  await site.close();
  rmSync(root, { recursive: true, force: true });
});

it("refuses a bad value naming the setting and its rule", async () => {
  const s = site.services.settings;
  for (const [key, value, rule] of [
    ["admin-oidc-issuer", "ftp://login.contoso.com", /https:\/\/ issuer URL/],
    ["admin-oidc-issuer", "http://login.contoso.com", /http:\/\/ only on a loopback address/],
    ["admin-oidc-client-id", "has space", /1 to 256 visible characters/],
    ["admin-oidc-name-claim", "no/slash", /claim name/],
    ["admin-oidc-groups-claim", "", /claim name/],
  ] as const) {
    await assert.rejects(s.set(key, value), (e: Error & { field?: string; rule?: string }) => e.field === key && rule.test(e.rule ?? ""), `${key} ${value}`);
  }
  await assert.rejects(s.set("admin-oidc-client-secret", `${SECRET} with spaces`), (e: Error & { field?: string }) => e.field === "admin-oidc-client-secret" && !e.message.includes(SECRET));
});

it("keeps the client secret sealed: shown as (set), opened only for the sign-in, never in the audit log, logs or database in clear", async () => {
  const s = site.services.settings;
  await s.set("admin-oidc-issuer", "https://login.contoso.com/tenant");
  const v = await s.set("admin-oidc-client-secret", SECRET);
  assert.equal(v.value, "(set)");
  assert.ok(!JSON.stringify(await s.list()).includes(SECRET));
  const config = await adminDirectoryConfig(s);
  assert.deepEqual(config, { issuer: "https://login.contoso.com/tenant", clientId: "opencmg-console", clientSecret: SECRET, nameClaim: "preferred_username", groupsClaim: "groups" });
  const audit = await site.services.audit.list({ object: "setting/admin-oidc-client-secret" });
  assert.equal(audit.items.length, 1, "the change is audited");
  assert.ok(!JSON.stringify(audit.items).includes(SECRET));
  const rows = await site.ctx.db.selectFrom("site_settings").selectAll().execute();
  assert.ok(!JSON.stringify(rows).includes(SECRET));
  for (const f of readdirSync(site.paths.logs)) assert.ok(!readFileSync(join(site.paths.logs, f), "utf8").includes(SECRET), f);
  await s.set("admin-oidc-client-secret", "");
  assert.equal((await s.get("admin-oidc-client-secret")).value, "");
  assert.equal((await adminDirectoryConfig(s))?.clientSecret, "");
});
