import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { clientTokenFor } from "./site-roles.ts";

const MP = "mp01.contoso.test";
const KEY_A = "A".repeat(43);
const KEY_B = "B".repeat(43);

describe("client tokens the site signs for a joined management point", () => {
  const root = mkdtempSync(join(tmpdir(), "opencmg-site-roles-"));
  let site: OpenedSite;
  let clientId: string;
  before(async () => {
    site = await openSite({ dataDir: root });
    await initSite(site, { code: "S01", name: "Unit" });
    await site.services.servers.add({ fqdn: MP });
    await site.services.roles.add(MP, "management-point", {});
    clientId = (await site.services.clients.registerWithToken({ name: "PC-UNIT-1", jkt: KEY_A })).client.id;
  });
  after(async () => {
    await site.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("signs a client token for a known client and the key recorded for it, with the site's current signing key", async () => {
    const r = await clientTokenFor(site.services, MP, { clientId, jkt: KEY_A });
    const claims = decodeJwt(r.token);
    assert.equal(claims.sub, clientId);
    assert.deepEqual(claims.cnf, { jkt: KEY_A });
    const current = (await site.services.tokens.signingKeys()).find((k) => k.state === "current");
    assert.equal(decodeProtectedHeader(r.token).kid, current?.kid);
  });

  it("signs nothing for another key, an unknown or blocked client, or a server without the role", async () => {
    await assert.rejects(clientTokenFor(site.services, MP, { clientId, jkt: KEY_B }), (e: Error & { kind?: string }) => e.kind === "forbidden" && /bound to key A+, not B+/.test(e.message));
    await assert.rejects(clientTokenFor(site.services, MP, { clientId: "GUID:00000000-0000-0000-0000-000000000000", jkt: KEY_A }), (e: Error & { kind?: string }) => e.kind === "not_found");
    await assert.rejects(clientTokenFor(site.services, MP, { clientId, jkt: KEY_A, lifetimeMs: 1 }), (e: Error & { kind?: string }) => e.kind === "validation" && /lifetimeMs/.test(e.message));
    await assert.rejects(clientTokenFor(site.services, "cp01.contoso.test", { clientId, jkt: KEY_A }), (e: Error & { kind?: string }) => e.kind === "forbidden" && /no management-point role/.test(e.message));
    await site.services.clients.block(clientId);
    await assert.rejects(clientTokenFor(site.services, MP, { clientId, jkt: KEY_A }), (e: Error & { kind?: string }) => e.kind === "forbidden" && /is blocked/.test(e.message));
  });
});
