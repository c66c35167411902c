import { initSite, openSite, type OpenedSite } from "../../src/site/site.ts";
import type { TestDatabase } from "./databases.ts";

/** A freshly initialised site (P01) on the given database kind. */
export async function openTestSite(db: TestDatabase, code = "P01"): Promise<OpenedSite & { adminToken: string }> {
  const { dataDir, databaseUrl } = await db.fresh();
  const site = await openSite({ dataDir, databaseUrl });
  const { adminToken } = await initSite(site, { code, name: "Test site" });
  return Object.assign(site, { adminToken });
}

/** A CMG with a freshly issued server certificate (for tests that need one to bind a connection point to). */
export async function createTestCmg(site: OpenedSite, name = "cmg1"): Promise<void> {
  const { createCa, issueCert } = await import("../../src/pki/issue.ts");
  const root = await createCa({ commonName: "Test Root" });
  const server = await issueCert({ issuer: root, commonName: `${name}.contoso.test`, dnsNames: [`${name}.contoso.test`], usage: "server" });
  await site.services.cmgs.create({ name, serverCertPem: server.certPem, serverKeyPem: server.keyPem, trustedRoots: [root.certPem] });
}
