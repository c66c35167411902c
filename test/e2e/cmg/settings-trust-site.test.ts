/**
 * The site's side of what instances trust, on SQLite and PostgreSQL: the settings revision is the
 * site's counter (raised only when the signed document changes, kept across restarts and a CMG
 * deleted and created again), connection point certificates are admitted once issued and dropped
 * when revoked (`opencmg connection-point revoke`) or when the role is removed, and
 * `opencmg cmg rotate-settings-key` keeps the old key signing beside the new one; every change is
 * audited. An instance's settings store takes each document as it comes.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { it } from "node:test";
import { startSiteServer } from "../../../src/app/site-server.ts";
import { SettingsStore } from "../../../src/gateway/settings-store.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { connectionPointIdentity, unverifiedSettings, type SignedSettings } from "../../../src/wire/tunnel/signed-settings.ts";
import { apiClient } from "../../helpers/api.ts";
import { runCli } from "../../helpers/cli.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";

const CP = "cp01.contoso.test";

forEachDatabase("CMG settings trust at the site", (tdb) => {
  it("assigns revisions, admits and revokes connection point certificates, rotates the settings-signing key, and audits it", async () => {
    const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
    const { dataDir, databaseUrl } = await tdb.fresh();
    const cli = (args: string[]) => runCli(["--data", dataDir, ...(databaseUrl ? ["--database", databaseUrl] : []), ...args]);
    let site: OpenedSite = await openSite({ dataDir, databaseUrl });
    try {
      const { adminToken } = await initSite(site, { code: "P01", name: "E2E" });
      const create = (crlCheck = true) => site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem], crlCheck });
      await create();
      const { servers, roles, cmgTrust, audit } = site.services;
      const revisionOf = (d: SignedSettings): number => unverifiedSettings(d).revision;

      const instance = new SettingsStore("cmg1", await cmgTrust.startupTrust("cmg1"));
      const d1 = await cmgTrust.signedSettings("cmg1");
      assert.equal(revisionOf(d1), 1);
      assert.equal(instance.offer(d1).result, "applied");
      assert.deepEqual(await cmgTrust.signedSettings("cmg1"), d1, "no change, the same document");

      await servers.add({ fqdn: CP });
      await roles.add(CP, "cmg-connection-point", { cmgName: "cmg1" });
      assert.equal(revisionOf(await cmgTrust.signedSettings("cmg1")), 1, "a role without a certificate admits nothing");
      const cert = await cmgTrust.connectionPointCertificate(CP);
      const who = connectionPointIdentity(new X509Certificate(cert.certPem));
      const d2 = await cmgTrust.signedSettings("cmg1");
      assert.equal(revisionOf(d2), 2);
      assert.deepEqual(unverifiedSettings(d2).connectionPoints, [who]);
      assert.equal(instance.offer(d2).result, "applied");
      assert.equal(instance.admits(who), true);
      assert.equal(instance.offer(d1).result, "refused", "an older document of the site is refused too");

      const revoked = await cli(["--json", "connection-point", "revoke", "--server", CP, "--reason", "laptop stolen"]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.deepEqual(revoked.json<{ serial: string; state: string }[]>().map((c) => [c.serial, c.state]), [[who.serial, "revoked"]]);
      const d3 = await cmgTrust.signedSettings("cmg1");
      assert.equal(revisionOf(d3), 3);
      assert.equal(instance.offer(d3).result, "applied");
      assert.equal(instance.admits(who), false, "revoked: refused at the tunnel port, tunnels closed");

      const renewed = connectionPointIdentity(new X509Certificate((await cmgTrust.connectionPointCertificate(CP)).certPem));
      assert.notEqual(renewed.serial, who.serial, "a revoked certificate is never handed out again");
      assert.notEqual(renewed.spki, who.spki, "nor its key");
      assert.equal(instance.offer(await cmgTrust.signedSettings("cmg1")).result, "applied");
      assert.equal(instance.admits(renewed), true);

      // The same over the admin API, recorded for the token that did it.
      const server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false });
      try {
        const call = apiClient(server.url, adminToken);
        const listed = await call("GET", `/api/v1/connection-point-certificates?server=${CP}`);
        assert.equal(listed.status, 200);
        assert.deepEqual(listed.body.map((c: { state: string }) => c.state).sort(), ["revoked", "valid"]);
        const viaApi = await call("POST", `/api/v1/servers/${CP}/connection-point-certificates/revoke`, { serial: renewed.serial, reason: "rebuilt server" });
        assert.equal(viaApi.status, 200, viaApi.text);
        assert.equal((await call("POST", `/api/v1/servers/${CP}/connection-point-certificates/revoke`, { serial: renewed.serial })).status, 404, "already revoked");
        assert.equal((await call("POST", `/api/v1/servers/${CP}/connection-point-certificates/revoke`, { serial: renewed.serial, extra: 1 })).status, 400, "unknown fields refused");
        assert.ok((await audit.list({ actor: "admin" })).items.some((e) => e.action === "cmgTrust.revokeConnectionPoint"));
      } finally {
        await server.close();
      }
      assert.equal(instance.offer(await cmgTrust.signedSettings("cmg1")).result, "applied");
      assert.equal(instance.admits(renewed), false);
      const third = connectionPointIdentity(new X509Certificate((await cmgTrust.connectionPointCertificate(CP)).certPem));
      assert.equal(instance.offer(await cmgTrust.signedSettings("cmg1")).result, "applied");
      assert.equal(instance.admits(third), true);

      const removed = await cli(["role", "remove", CP, "cmg-connection-point"]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual((await cmgTrust.connectionPointCertificates(CP)).map((c) => c.revokedReason).sort(), ["connection point role removed", "laptop stolen", "rebuilt server"]);
      const d7 = await cmgTrust.signedSettings("cmg1");
      assert.equal(revisionOf(d7), 7);
      assert.deepEqual(unverifiedSettings(d7).connectionPoints, []);
      assert.equal(instance.offer(d7).result, "applied");
      assert.equal(instance.admits(third), false);

      const firstKid = instance.trustedKids()[0]!;
      const rotated = await cli(["--json", "cmg", "rotate-settings-key"]);
      assert.equal(rotated.code, 0, rotated.stderr);
      assert.equal(rotated.json<{ previous: string }>().previous, firstKid);
      const d8 = await cmgTrust.signedSettings("cmg1");
      assert.equal(revisionOf(d8), 8);
      assert.equal(d8.signatures.length, 2, "the old key signs beside the new one");
      assert.equal(instance.offer(d8).result, "applied", "an instance that knows only the old key takes the new one from it");
      assert.equal((await cli(["cmg", "rotate-settings-key"])).code, 0);
      const d9 = await cmgTrust.signedSettings("cmg1");
      assert.equal(instance.offer(d9).result, "applied");
      assert.ok(!instance.trustedKids().includes(firstKid), "the first key is retired");
      assert.deepEqual((await cmgTrust.settingsKeys()).map((k) => k.state), ["current", "previous", "retired"]);

      const actions = (await audit.list()).items.map((e) => `${e.action} ${e.object}`);
      for (const a of [
        `cmgTrust.connectionPointCertificate connection-point/${CP}/certificates`,
        `cmgTrust.revokeConnectionPoint connection-point/${CP}/certificates`,
        `roles.remove server/${CP}/role/cmg-connection-point`,
        "cmgTrust.rotateSettingsKey settings-signing-keys",
      ]) assert.ok(actions.includes(a), `${a} in ${actions.join("; ")}`);
      assert.ok(!JSON.stringify((await audit.list()).items).includes("PRIVATE KEY"), "no key in the audit log");

      // The counter is the site's: it survives a restart, and a CMG created again with the same name goes on from it.
      await site.close();
      site = await openSite({ dataDir, databaseUrl });
      assert.equal(revisionOf(await site.services.cmgTrust.signedSettings("cmg1")), 9);
      await site.services.cmgs.remove("cmg1");
      await create(false);
      assert.equal(revisionOf(await site.services.cmgTrust.signedSettings("cmg1")), 10);
    } finally {
      await site.close();
    }
  });
});
