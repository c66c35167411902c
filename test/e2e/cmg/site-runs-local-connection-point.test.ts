/**
 * A real `opencmg site serve` runs the CMG connection point role of its own server: the role added
 * (CLI) to the site server's FQDN while it runs turns a local CMG Ready, with no `connection-point
 * serve` process; bound to another CMG, it moves its tunnel there; removing the role ends the tunnel. A role on another server is not started here.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { initSite, openSite } from "../../../src/site/site.ts";
import { apiClient } from "../../helpers/api.ts";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { startSiteServe, type SiteServe } from "../../helpers/site-serve.ts";
import { until } from "../../helpers/until.ts";

const SELF = "site01.contoso.test";
const OTHER = "cp02.contoso.test";
let pki: TestPki;
let pki2: TestPki;
let serve: SiteServe | undefined;

before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  pki2 = await makeTestPki({ serverName: "cmg2.contoso.test" });
});

after(async () => {
  await serve?.stop();
});

/** Established TCP connections to this local port, seen from the connecting side (/proc/net/tcp*). */
function connectionsTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[2] is rem_address (ADDR:PORT), f[3] the state (01: established).
      if (f.length > 3 && f[2]!.endsWith(`:${hex}`) && f[3] === "01") n++;
    }
  }
  return n;
}

it("runs the connection point role of its own server when it is added, stops it when it is removed, and leaves other servers' roles alone", async () => {
  const data = tempDir();
  const site = await openSite({ dataDir: data });
  let token: string;
  try {
    token = (await initSite(site, { code: "P01", name: "E2E" })).adminToken;
  } finally {
    await site.close();
  }
  serve = await startSiteServe(data, ["--server-fqdn", SELF]);
  const api = apiClient(serve.url, token);
  const cli = async (args: string[]): Promise<void> => {
    const r = await runCli(["--data", data, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };
  const client = await freePortRange(1);
  const tunnel = await freePortRange(1);
  const body = {
    name: "cmg1",
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    trustedRoots: [pki.root.certPem],
    instances: 1,
    provider: "local",
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: client, tunnelPortBase: tunnel, metricsPortBase: 0 },
  };
  const created = await api("POST", "/api/v1/cmgs", body);
  assert.equal(created.status, 201, created.text);

  // Another server's role first: its host runs it, not this site server.
  await cli(["server", "add", OTHER]);
  await cli(["role", "add", OTHER, "cmg-connection-point", "--cmg", "cmg1"]);
  await cli(["server", "add", SELF, "--site-server"]);
  await cli(["role", "add", SELF, "cmg-connection-point", "--cmg", "cmg1"]);

  const ready = await until("cmg1 to be Ready through the site server's own connection point", async () => {
    const v = (await api("GET", "/api/v1/cmgs/cmg1")).body as { status: string; instances: { connectionPoints: { server: string; connected: boolean }[] }[] };
    return v.status === "Ready" ? v : undefined;
  }, 120_000);
  const reported = ready.instances[0]!.connectionPoints;
  assert.deepEqual(reported.filter((c) => c.connected).map((c) => c.server), [SELF]);
  assert.equal(reported.some((c) => c.server === OTHER), false, "no tunnel reported from the other server");
  assert.ok(connectionsTo(tunnel) > 0, "a tunnel is open to the instance");
  const serviceLog = readFileSync(join(data, "logs", "CMGService.log"), "utf8");
  assert.match(serviceLog, new RegExp(`Connection point on ${SELF.replace(/\./g, "\\.")} started for CMG cmg1`));
  assert.doesNotMatch(serviceLog, new RegExp(`Connection point on ${OTHER.replace(/\./g, "\\.")}`));

  // Bound to another CMG: the connection point is restarted for it, the first CMG's tunnel ends.
  const tunnel2 = await freePortRange(1);
  const created2 = await api("POST", "/api/v1/cmgs", { ...body, name: "cmg2", serverCertPem: pki2.server.certPem, serverKeyPem: pki2.server.keyPem, trustedRoots: [pki2.root.certPem], deploy: { ...body.deploy, clientPortBase: await freePortRange(1), tunnelPortBase: tunnel2 } });
  assert.equal(created2.status, 201, created2.text);
  await cli(["role", "set", SELF, "cmg-connection-point", "--cmg", "cmg2"]);
  await until("cmg2 to be Ready through the same connection point", async () => (await api("GET", "/api/v1/cmgs/cmg2")).body.status === "Ready", 120_000);
  await until("cmg1's tunnel to end once the role moved to cmg2", () => connectionsTo(tunnel) === 0, 60_000);
  assert.ok(connectionsTo(tunnel2) > 0, "a tunnel is open to cmg2's instance");

  await cli(["role", "remove", SELF, "cmg-connection-point"]);
  await until("the tunnel to end once the role is removed", () => connectionsTo(tunnel2) === 0, 60_000);
  await until("the site service to log the stop", () => /The connection point on site01\.contoso\.test for CMG cmg2 stopped\./.test(readFileSync(join(data, "logs", "CMGService.log"), "utf8")));
  await serve.stop();
  assert.equal(serve.child.exitCode, 0, serve.stderr());
});
