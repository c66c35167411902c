import { initSite, openSite, type OpenedSite } from "../../src/site/site.ts";
import type { TestDatabase } from "./databases.ts";

/** A freshly initialised site (P01) on the given database kind. */
export async function openTestSite(db: TestDatabase, code = "P01"): Promise<OpenedSite & { adminToken: string }> {
  const { dataDir, databaseUrl } = await db.fresh();
  const site = await openSite({ dataDir, databaseUrl });
  const { adminToken } = await initSite(site, { code, name: "Test site" });
  return Object.assign(site, { adminToken });
}
