/**
 * Instance restarts in the site database (what `opencmg cmg start` records when it restarts an
 * instance): the count and the last restart per instance in the CMG's view, a warning status
 * message per restart, and nothing left once the CMG is deleted. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { initSite, openSite } from "../../../src/site/site.ts";
import { StatusId } from "../../../src/site/status-ids.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";

forEachDatabase("CMG instance restarts", (tdb) => {
  it("counts restarts per instance, raises a status message each, and goes with the CMG", async () => {
    const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
    const { dataDir, databaseUrl } = await tdb.fresh();
    let now = new Date();
    const site = await openSite({ dataDir, databaseUrl, now: () => now });
    try {
      await initSite(site, { code: "P01", name: "E2E" });
      const cmgs = site.services.cmgs;
      await cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, instances: 2, trustedRoots: [pki.root.certPem] });
      assert.deepEqual(
        (await cmgs.show("cmg1")).instances.map((i) => [i.restarts, i.lastRestartAt, i.lastExit]),
        [
          [0, null, null],
          [0, null, null],
        ],
      );

      await cmgs.recordRestart("CMG1", 1, "SIGKILL", "cmg.contoso.test");
      now = new Date(now.getTime() + 60_000);
      await cmgs.recordRestart("cmg1", 1, "1", "cmg.contoso.test");
      const v = await cmgs.show("cmg1");
      assert.deepEqual(
        v.instances.map((i) => [i.restarts, i.lastRestartAt, i.lastExit]),
        [
          [0, null, null],
          [2, now.toISOString(), "1"],
        ],
      );

      const msgs = await site.services.status.messages({ messageId: StatusId.CMG_INSTANCE_RESTARTED });
      assert.deepEqual(
        msgs.map((m) => [m.severity, m.component, m.server, m.text, m.properties]),
        [
          ["warning", "CMGSetup", "cmg.contoso.test", "CMG cmg1: instance 1 exited (SIGKILL) and was restarted.", { cmg: "cmg1", instance: 1, exit: "SIGKILL" }],
          ["warning", "CMGSetup", "cmg.contoso.test", "CMG cmg1: instance 1 exited (1) and was restarted.", { cmg: "cmg1", instance: 1, exit: "1" }],
        ],
      );

      await cmgs.remove("cmg1");
      await cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, instances: 2, trustedRoots: [pki.root.certPem] });
      assert.equal((await cmgs.show("cmg1")).instances[1]!.restarts, 0, "a new CMG of the same name starts from 0");
    } finally {
      await site.close();
    }
  });
});
