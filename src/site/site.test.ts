import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LOG_FILES } from "../logs/files.ts";
import { initSite, openSite } from "./site.ts";

describe("the data folder", () => {
  const root = mkdtempSync(join(tmpdir(), "opencmg-site-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const mode = (p: string): number => statSync(p).mode & 0o777;

  it("keeps the database, the key and the logs from other users, also in a folder that already existed 0755", async () => {
    const data = join(root, "existing");
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    const site = await openSite({ dataDir: data });
    try {
      await initSite(site, { code: "P01", name: "Test" });
      site.logs.component(LOG_FILES.smsprov).info("a line");
      assert.equal(mode(join(data, "site.db")), 0o600);
      assert.equal(mode(join(data, "site.key")), 0o600);
      assert.equal(mode(join(data, "admin.token")), 0o600);
      assert.equal(mode(data), 0o700);
      assert.equal(mode(join(data, "logs")), 0o700);
      assert.equal(mode(join(data, "logs", "smsprov.log")), 0o600);
    } finally {
      await site.close();
    }
  });

  it("tightens a database file someone made world-readable", async () => {
    const data = join(root, "loosened");
    mkdirSync(data);
    writeFileSync(join(data, "site.db"), "");
    chmodSync(join(data, "site.db"), 0o644);
    const site = await openSite({ dataDir: data });
    await site.close();
    assert.equal(mode(join(data, "site.db")), 0o600);
  });
});
