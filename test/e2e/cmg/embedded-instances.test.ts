/**
 * The embedded CMG's instances of `opencmg up` follow the CMG at the site: a stopped CMG stays
 * stopped when they start, `cmg start` starts them, a scale changes how many run, a delete stops
 * them all.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, it } from "node:test";
import { runEmbeddedInstances } from "../../../src/app/embedded-instances.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";

let site: OpenedSite;
let clientBase: number;

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

before(async () => {
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  site = await openSite({ dataDir: tempDir() });
  await initSite(site, { code: "P01", name: "E2E" });
  clientBase = await freePortRange(2);
  await site.services.cmgs.create({
    name: "embedded",
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    instances: 2,
    trustedRoots: [pki.root.certPem],
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: await freePortRange(2), metricsPortBase: 0 },
  });
});

after(async () => {
  await site.close();
});

it("a stopped CMG stays stopped; start, scale and delete are followed without a restart", async () => {
  await site.services.cmgs.stop("embedded");
  const instances = await runEmbeddedInstances(site, "embedded", { pollMs: 60_000 });
  try {
    assert.equal(instances.running(), 0, "stopped: nothing started");
    assert.equal(await listening(clientBase), false);

    await site.services.cmgs.start("embedded");
    await instances.follow();
    assert.equal(instances.running(), 2);
    assert.equal(await listening(clientBase + 1), true);

    await site.services.cmgs.update("embedded", { instances: 1 });
    await instances.follow();
    assert.equal(instances.running(), 1);
    assert.equal(await listening(clientBase + 1), false, "instance 1 stopped");
    assert.equal(await listening(clientBase), true, "instance 0 kept running");

    // Deleting: marked, then the instances (this process runs them) stop and let go of the CMG, then it goes.
    await site.services.cmgs.beginDelete("embedded");
    await instances.follow();
    await site.services.cmgs.finishDelete("embedded");
    assert.equal(instances.running(), 0);
    assert.equal(await listening(clientBase), false);
  } finally {
    await instances.close();
  }
});
