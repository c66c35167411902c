/**
 * What `opencmg cmg update` and the admin API refuse, with the field and a message that says what
 * to do: replacing a list without --replace-certificates, the limits, settings fixed at creation,
 * a renewal for another (or differently written) service name, a trusted root that is not a
 * self-signed root, and trust changes that would lock clients out (unless --force). Nothing is
 * changed by a refusal.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import type { CmgView } from "../../../src/site/services/cmgs.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";

let pki: TestPki;
let dataDir: string;
let site: OpenedSite;
let adminToken: string;
let api: RunningSiteServer;
const file = (name: string, body: string): string => {
  const p = join(dataDir, name);
  writeFileSync(p, body, { mode: 0o600 });
  return p;
};
const cli = (...args: string[]) => runCli(["--data", dataDir, ...args]);

before(async () => {
  pki = await makeTestPki({ serverName: "CMG.contoso.test" });
  dataDir = tempDir();
  site = await openSite({ dataDir });
  ({ adminToken } = await initSite(site, { code: "P01", name: "E2E" }));
  await site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem], intermediates: [pki.intermediate.certPem], crlCheck: false });
  api = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" } });
});

after(async () => {
  await api.close();
  await site.close();
});

const show = (): Promise<CmgView> => site.services.cmgs.show("cmg1");

it("refuses a list given whole without --replace-certificates, and the limits of 2 roots, 4 intermediates and 16 instances", async () => {
  const root2 = file("root2.pem", pki.root2.certPem);
  const r = await cli("cmg", "update", "cmg1", "--trusted-root", root2);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--replace-certificates/);
  assert.match(r.stderr, /--add-trusted-root/);
  assert.equal((await show()).trustedRoots.length, 1, "the root was not replaced");

  const third = file("third.pem", pki.untrustedRoot.certPem);
  assert.equal((await cli("cmg", "update", "cmg1", "--add-trusted-root", root2)).code, 0);
  const over = await cli("cmg", "update", "cmg1", "--add-trusted-root", third);
  assert.equal(over.code, 2);
  assert.match(over.stderr, /at most 2/);
  assert.equal((await cli("cmg", "update", "cmg1", "--remove-trusted-root", pki.root2.thumbprint)).code, 0);

  const cas = await Promise.all([1, 2, 3, 4].map((i) => createCa({ commonName: `Extra Sub ${i}`, issuer: pki.root })));
  const many = await cli("cmg", "update", "cmg1", ...cas.flatMap((c, i) => ["--add-intermediate", file(`sub${i}.pem`, c.certPem)]));
  assert.equal(many.code, 2);
  assert.match(many.stderr, /at most 4/);

  for (const n of ["0", "17", "two"]) {
    const bad = await cli("cmg", "update", "cmg1", "--instances", n);
    assert.equal(bad.code, 2, n);
    assert.match(bad.stderr, /instances/);
  }
  assert.equal((await show()).instanceCount, 1);
});

it("checks an added root as strictly as create does: a self-signed CA, not expired", async () => {
  const sub = await cli("cmg", "update", "cmg1", "--add-trusted-root", file("sub.pem", pki.intermediate.certPem));
  assert.equal(sub.code, 2);
  assert.match(sub.stderr, /self-signed root CA/);
  const leaf = await cli("cmg", "update", "cmg1", "--add-trusted-root", file("leaf.pem", pki.client.certPem));
  assert.equal(leaf.code, 2);
  assert.match(leaf.stderr, /must be a CA certificate/);
});

it("refuses what is fixed at creation with 'create a new CMG'", async () => {
  for (const [flag, value] of [["--region", "westeurope"], ["--cloud", "usgov"], ["--provider", "external"], ["--service-fqdn", "other.contoso.test"], ["--resource-group", "other-rg"]] as const) {
    const r = await cli("cmg", "update", "cmg1", flag, value);
    assert.equal(r.code, 2, flag);
    assert.match(r.stderr, /create a new CMG/, flag);
  }
});

it("renews only for the same service name, written the same way", async () => {
  const other = await issueCert({ issuer: pki.root, commonName: "other.contoso.test", dnsNames: ["other.contoso.test"], usage: "server" });
  const r = await cli("cmg", "update", "cmg1", "--server-cert", file("other.pem", other.certPem), "--server-key", file("other.key", other.keyPem));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs a new CMG/);
  const lower = await issueCert({ issuer: pki.root, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], usage: "server" });
  const c = await cli("cmg", "update", "cmg1", "--server-cert", file("lower.pem", lower.certPem), "--server-key", file("lower.key", lower.keyPem));
  assert.equal(c.code, 2);
  assert.match(c.stderr, /case-sensitive/);
  const mismatch = await cli("cmg", "update", "cmg1", "--server-cert", file("lower.pem", lower.certPem), "--server-key", file("other.key", other.keyPem));
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stderr, /serverKey/);
  assert.equal((await show()).serverCertificate.thumbprint, pki.server.thumbprint, "still the first certificate");
  const same = await issueCert({ issuer: pki.root, commonName: "CMG.contoso.test", dnsNames: ["CMG.contoso.test"], usage: "server" });
  const ok = await cli("cmg", "update", "cmg1", "--server-cert", file("same.pem", same.certPem), "--server-key", file("same.key", same.keyPem));
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await show()).serverCertificate.thumbprint, same.thumbprint);
});

it("refuses a trust change that would lock clients out unless --force, saying who", async () => {
  // Removing the only root orphans the intermediate, whoever is registered.
  const orphan = await cli("cmg", "update", "cmg1", "--remove-trusted-root", pki.root.thumbprint, "--add-trusted-root", file("r2.pem", pki.root2.certPem));
  assert.equal(orphan.code, 2);
  assert.match(orphan.stderr, /OpenCMG Test Issuing CA.*would chain to no trusted root/);
  assert.match(orphan.stderr, /--force/);
  await site.services.clients.registerWithCertificate({ name: "PC-INTERNET", thumbprint: pki.clientViaRoot2.thumbprint, subject: "CN=PC-ROOT2", connectionType: "internet", rootThumbprint: pki.root2.thumbprint });
  assert.equal((await cli("cmg", "update", "cmg1", "--add-trusted-root", file("r2.pem", pki.root2.certPem))).code, 0);
  const locked = await cli("cmg", "update", "cmg1", "--remove-trusted-root", pki.root2.thumbprint);
  assert.equal(locked.code, 2);
  assert.match(locked.stderr, /1 client\(s\) registered through the internet chain to the root .* PC-INTERNET/);
  assert.equal((await show()).trustedRoots.length, 2, "nothing changed");
  const forced = await cli("cmg", "update", "cmg1", "--remove-trusted-root", pki.root2.thumbprint, "--force");
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual((await show()).trustedRoots.map((r) => r.thumbprint), [pki.root.thumbprint]);
});

it("the admin API changes a CMG through the same service: refusals with the field, stop and start, unknown fields refused", async () => {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(api.url + path, { method, headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const replace = await call("PATCH", "/api/v1/cmgs/cmg1", { trustedRoots: [pki.root2.certPem] });
  assert.equal(replace.status, 400);
  assert.equal(replace.body.error.field, "trustedRoots");
  const region = await call("PATCH", "/api/v1/cmgs/cmg1", { region: "westeurope" });
  assert.equal(region.status, 400);
  assert.match(region.body.error.message, /create a new CMG/);
  const unknown = await call("PATCH", "/api/v1/cmgs/cmg1", { colour: "blue" });
  assert.equal(unknown.status, 400);
  assert.match(unknown.body.error.message, /colour/);
  const scaled = await call("PATCH", "/api/v1/cmgs/cmg1", { instances: 3 });
  assert.equal(scaled.status, 200, JSON.stringify(scaled.body));
  assert.equal(scaled.body.instanceCount, 3);
  assert.equal(JSON.stringify(scaled.body).includes("PRIVATE KEY"), false, "no key in the answer");
  const stopped = await call("POST", "/api/v1/cmgs/cmg1/stop");
  assert.equal(stopped.status, 200);
  assert.equal(stopped.body.status, "Stopped");
  assert.equal(stopped.body.runState, "stopped");
  const started = await call("POST", "/api/v1/cmgs/cmg1/start");
  assert.equal(started.body.runState, "running");
  assert.equal(started.body.status, "Starting");
  assert.match(started.body.statusReason, /no CMG connection point is bound to it/);
  const deleted = await call("DELETE", "/api/v1/cmgs/cmg1");
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.equal((await call("GET", "/api/v1/cmgs/cmg1")).status, 404);
});
