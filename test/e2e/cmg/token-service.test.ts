/**
 * The site's token service on SQLite and PostgreSQL: bulk token lifetimes and caps by rule, many
 * devices per bulk token (each device, known by its key, once; the cap holds when two devices race
 * for its last use), revocation, a directory ID token used once, signing-key rotation with an
 * overlap, private keys sealed, and what the instances get (public keys, audience, blocked clients).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { ValidationError } from "../../../src/errors.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";

forEachDatabase("site token service", (tdb) => {
  it("bulk tokens, signing keys, and the token trust pushed to the instances", async () => {
    const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
    const { dataDir, databaseUrl } = await tdb.fresh();
    const site = await openSite({ dataDir, databaseUrl });
    try {
      await initSite(site, { code: "P01", name: "E2E" });
      await site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem] });
      const tokens = site.services.tokens;
      for (const bad of ["0", "10081", "ten", "1.5"]) {
        await assert.rejects(tokens.createBulk({ lifetimeMinutes: bad }), (e: unknown) => e instanceof ValidationError && e.field === "lifetime", bad);
      }
      const bulk = await tokens.createBulk();
      assert.equal(Date.parse(bulk.expiresAt) - Date.now() > 4319 * 60_000, true, "3 days by default");

      for (const bad of ["0", "-1", "1000001", "two", "1.5"]) {
        await assert.rejects(tokens.createBulk({ maxUses: bad }), (e: unknown) => e instanceof ValidationError && e.field === "maxUses", bad);
      }
      const jkt = (n: number) => String(n).padStart(43, "k");
      const id = (n: number) => `GUID:00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

      // Without a cap: three devices, each its own client; the first device again gets its own.
      const uses = [await tokens.useBulk(bulk.id, jkt(1), id(1)), await tokens.useBulk(bulk.id, jkt(2), id(2)), await tokens.useBulk(bulk.id, jkt(3), id(3))];
      assert.deepEqual(uses, [1, 2, 3].map((n) => ({ ok: true, clientId: id(n), existing: false })));
      assert.deepEqual(await tokens.useBulk(bulk.id, jkt(1), id(9)), { ok: true, clientId: id(1), existing: true });
      const listed = (await tokens.listBulk()).find((b) => b.id === bulk.id)!;
      assert.deepEqual([listed.devices, listed.maxUses, listed.state], [3, null, "active"]);

      // A cap of one: two devices present it at once, exactly one registers.
      const one = await tokens.createBulk({ maxUses: "1" });
      const [a, b] = await Promise.all([tokens.useBulk(one.id, jkt(4), id(4)), tokens.useBulk(one.id, jkt(5), id(5))]);
      assert.deepEqual([a.ok, b.ok].sort(), [false, true]);
      assert.deepEqual([a, b].find((r) => !r.ok), { ok: false, reason: "bulk_token_used", maxUses: 1 });
      assert.equal((await tokens.listBulk()).find((t) => t.id === one.id)!.state, "used");
      const revoked = await tokens.createBulk({ lifetimeMinutes: "60" });
      assert.equal((await tokens.revokeBulk(revoked.id)).state, "revoked");
      assert.deepEqual(await tokens.useBulk(revoked.id, jkt(6), id(6)), { ok: false, reason: "bulk_token_revoked" });
      assert.deepEqual(await tokens.useBulk("7b0e9c1a-0000-4000-8000-000000000000", jkt(7), id(7)), { ok: false, reason: "bulk_token_unknown" });
      await assert.rejects(tokens.revokeBulk("nope"), (e: unknown) => e instanceof ValidationError && e.field === "id");

      // A directory ID token registers once, also when two registrations race with it.
      const exp = new Date(Date.now() + 3600_000);
      const firsts = await Promise.all([tokens.recordIdTokenUse("https://dir jti:1", exp), tokens.recordIdTokenUse("https://dir jti:1", exp)]);
      assert.deepEqual(firsts.sort(), [false, true]);
      assert.equal(await tokens.recordIdTokenUse("https://dir jti:2", exp), true);

      // Keys: sealed at rest, rotated with an overlap, only public halves pushed.
      const first = (await tokens.signingKeys()).find((k) => k.state === "current")!;
      const rows = await site.ctx.db.selectFrom("token_signing_keys").select(["private_key"]).execute();
      for (const r of rows) assert.doesNotMatch(r.private_key, /PRIVATE KEY/);
      const r1 = await tokens.rotateSigningKey();
      assert.equal(r1.previous, first.kid);
      const r2 = await tokens.rotateSigningKey();
      assert.deepEqual(r2.retired, [first.kid]);
      const trust = (await site.services.cmgs.gatewaySettings("cmg1")).tokens!;
      assert.deepEqual(trust.keys.map((k) => k.kid).sort(), [r2.current, r1.current].sort());
      for (const k of trust.keys) assert.equal("d" in k, false);
      assert.equal(trust.audience, "opencmg-cmg:cmg1");
      assert.equal(trust.issuer, "opencmg-site:P01");
      // Where devices reach it, for the proofs' htu: the service name, and each instance's client URL.
      assert.deepEqual(trust.origins, { cmg: ["https://cmg.contoso.test"], instances: ["https://cmg.contoso.test"] });
      await site.services.cmgs.update("cmg1", { instances: 2 });
      assert.deepEqual((await site.services.cmgs.gatewaySettings("cmg1")).tokens!.origins, { cmg: ["https://cmg.contoso.test"], instances: ["https://cmg.contoso.test", "https://cmg.contoso.test:444"] });

      // A blocked client is in the list the instances get.
      const { client } = await site.services.clients.registerWithToken({ name: "PC-1", jkt: "A".repeat(43) });
      await site.services.clients.block(client.id);
      assert.deepEqual((await site.services.cmgs.gatewaySettings("cmg1")).tokens!.blocked, [client.id]);
      await site.services.clients.block(client.id, false);
      assert.deepEqual((await site.services.cmgs.gatewaySettings("cmg1")).tokens!.blocked, []);
    } finally {
      await site.close();
    }
  });
});
