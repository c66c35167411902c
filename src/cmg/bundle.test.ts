import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { ValidationError } from "../errors.ts";
import { loadStartupFile } from "../gateway/startup-file.ts";
import { createCa, issueCert } from "../pki/issue.ts";
import type { CmgCreateInput } from "../site/services/cmg-model.ts";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { tempDir } from "../../test/helpers/databases.ts";
import { writeCmgBundle } from "./bundle.ts";

let dir: string;
let site: OpenedSite;
let base: Omit<CmgCreateInput, "name">;
const ADDRESSES = ["192.0.2.11", "192.0.2.12", "gw3.contoso.test"];

before(async () => {
  dir = tempDir("opencmg-bundle-");
  site = await openSite({ dataDir: dir });
  await initSite(site, { code: "P01", name: "Test site" });
  const root = await createCa({ commonName: "Test Root" });
  const server = await issueCert({ issuer: root, commonName: "*.contoso.test", dnsNames: ["*.contoso.test"], usage: "server" });
  base = { serverCertPem: server.certPem, serverKeyPem: server.keyPem, trustedRoots: [root.certPem], provider: "external" };
});
after(async () => {
  await site.close();
  rmSync(dir, { recursive: true, force: true });
});

const refused = async (p: Promise<unknown>, field: string, rule: RegExp): Promise<void> => {
  await assert.rejects(p, (e: unknown) => e instanceof ValidationError && e.field === field && rule.test(e.message), `${field} ${rule}`);
};

it("instances on their own addresses: each start-up file binds its own address on the ports themselves, and connection points dial it there", async () => {
  const view = await site.services.cmgs.create({ ...base, name: "spread", serviceFqdn: "cmg.contoso.test", instances: 3, deploy: { instanceAddresses: ADDRESSES, clientPortBase: 443, tunnelPortBase: 10140 } });
  assert.deepEqual(view.instances.map((i) => [i.listenHost, i.clientPort, i.tunnelHost, i.tunnelPort, i.clientUrl]), ADDRESSES.map((a) => [a, 443, a, 10140, "https://cmg.contoso.test"]));
  const b = await writeCmgBundle(site, view, join(dir, "bundle"));
  for (const [i, f] of b.files.entries()) {
    const cfg = loadStartupFile(f);
    assert.equal(cfg.index, i);
    assert.deepEqual(cfg.client, { host: ADDRESSES[i], port: 443 });
    assert.deepEqual([cfg.tunnel.host, cfg.tunnel.port], [ADDRESSES[i], 10140]);
  }
  // Connection points dial each address and check the tunnel certificate against it.
  const san = new X509Certificate(readFileSync(join(b.dir, "tunnel.pem"))).subjectAltName ?? "";
  for (const a of ["IP Address:192.0.2.11", "IP Address:192.0.2.12", "DNS:gw3.contoso.test"]) assert.ok(san.includes(a), `${a} in ${san}`);
});

it("without addresses, instance i stays on the ports + i on one host", async () => {
  const view = await site.services.cmgs.create({ ...base, name: "onehost", serviceFqdn: "cmg2.contoso.test", instances: 2, deploy: { listenHost: "127.0.0.1", clientPortBase: 10443, tunnelPortBase: 20140 } });
  assert.deepEqual(view.instances.map((i) => [i.listenHost, i.clientPort, i.tunnelPort]), [["127.0.0.1", 10443, 20140], ["127.0.0.1", 10444, 20141]]);
});

it("each instance needs an address of its own: a short list, a repeated or malformed address is refused naming the field and rule", async () => {
  await refused(site.services.cmgs.create({ ...base, name: "short", serviceFqdn: "c3.contoso.test", instances: 3, deploy: { instanceAddresses: ADDRESSES.slice(0, 2) } }), "instances", /at most 2: each instance listens on its own address/);
  await refused(site.services.cmgs.create({ ...base, name: "twice", serviceFqdn: "c4.contoso.test", instances: 2, deploy: { instanceAddresses: ["192.0.2.1", "192.0.2.1"] } }), "deploy.instanceAddresses", /each address once/);
  await refused(site.services.cmgs.create({ ...base, name: "bad", serviceFqdn: "c5.contoso.test", deploy: { instanceAddresses: ["not an address"] } }), "deploy.instanceAddresses.0", /IP address or host name/);
  await refused(site.services.cmgs.create({ ...base, name: "none", serviceFqdn: "c6.contoso.test", deploy: { instanceAddresses: [] } }), "deploy.instanceAddresses", /at least one/);
  // Scaling past the list is refused too; within it, allowed.
  await refused(site.services.cmgs.update("spread", { instances: 4 }), "instances", /at most 3/);
  assert.equal((await site.services.cmgs.update("spread", { instances: 2 })).instanceCount, 2);
});
