/**
 * Every role runs as a service (deploy/systemd): `site serve`, `mp serve`, `sup serve`,
 * `connection-point serve` and `gateway serve`, each a real process here, stops cleanly on
 * SIGTERM (what `systemctl stop` sends): exit code 0, its port closed, and a last line saying so.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { writeCmgBundle } from "../../../src/cmg/bundle.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { answers, freePort, freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const started: ChildProcess[] = [];
const data = tempDir();
let bundleFile = "";
let clientPort = 0;
const SERVER = "site01.contoso.test";

before(async () => {
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  clientPort = await freePortRange(1);
  const site = await openSite({ dataDir: data });
  try {
    await initSite(site, { code: "P01", name: "E2E" });
    await site.services.servers.add({ fqdn: SERVER, siteServer: true });
    await site.services.roles.add(SERVER, "management-point", { internalUrl: `https://${SERVER}:8443` });
    await site.services.roles.add(SERVER, "software-update-point", { internalUrl: `https://${SERVER}:8531` });
    // External provider: no `site serve` runs its instance, this test's `gateway serve` does.
    await site.services.cmgs.create({
      name: "cmg1",
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      trustedRoots: [pki.root.certPem],
      provider: "external",
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", instanceHost: "127.0.0.1", clientPortBase: clientPort, tunnelPortBase: await freePortRange(1), metricsPortBase: 0 },
    });
    await site.services.roles.add(SERVER, "cmg-connection-point", { cmgName: "cmg1" });
    bundleFile = (await writeCmgBundle(site, await site.services.cmgs.show("cmg1"), join(tempDir(), "bundle"))).files[0]!;
  } finally {
    await site.close();
  }
});

after(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

const services: { name: string; args: (port: number) => string[]; ready: RegExp; last: RegExp; port?: () => number }[] = [
  { name: "site serve", args: (p) => ["site", "serve", "--listen", `127.0.0.1:${p}`], ready: /serving the admin API/, last: /^OpenCMG site stopped \(SIGTERM\)$/ },
  { name: "mp serve", args: (p) => ["mp", "serve", "--server", SERVER, "--listen", `127.0.0.1:${p}`], ready: /Ctrl-C stops it/, last: /^OpenCMG management point site01\.contoso\.test stopped \(SIGTERM\)$/ },
  { name: "sup serve", args: (p) => ["sup", "serve", "--server", SERVER, "--listen", `127.0.0.1:${p}`], ready: /Ctrl-C stops it/, last: /^OpenCMG software update point site01\.contoso\.test stopped \(SIGTERM\)$/ },
  // Its port: the metrics listener (it dials the instances, it listens for nothing else).
  { name: "connection-point serve", args: (p) => ["connection-point", "serve", "--server", SERVER, "--metrics-port", String(p), "--metrics-host", "127.0.0.1"], ready: /Ctrl-C stops it/, last: /^connection point on site01\.contoso\.test stopped \(SIGTERM\)$/ },
  { name: "gateway serve", args: () => ["gateway", "serve", "--config", bundleFile], ready: /listening/, last: /^gateway \S+ stopped \(SIGTERM\)$/, port: () => clientPort },
];

for (const svc of services) {
  it(`\`opencmg ${svc.name}\` stops cleanly on SIGTERM: exit code 0, its port closed, a last line saying so`, async () => {
    const port = svc.port?.() ?? (await freePort());
    const child = spawn(process.execPath, [OPENCMG_BIN, "--data", data, ...svc.args(port)], { stdio: ["ignore", "ignore", "pipe"] });
    started.push(child);
    let err = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    await until(`${svc.name} to run`, () => svc.ready.test(err) || (child.exitCode !== null && assert.fail(`${svc.name} exited ${child.exitCode}: ${err}`)));
    await until(`${svc.name} to answer on port ${port}`, () => answers(port));
    child.kill("SIGTERM");
    const code = await until(`${svc.name} to exit`, () => (child.exitCode ?? child.signalCode) ?? undefined);
    assert.equal(code, 0, err);
    assert.equal(await answers(port), false, "the port is closed");
    const lines = err.trimEnd().split("\n");
    assert.match(lines.at(-1)!, svc.last, err);
  });
}
