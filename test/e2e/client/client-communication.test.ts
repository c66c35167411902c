/**
 * The site's "Clients check the certificate revocation list (CRL) for site systems" end to end:
 * a real HTTPS management point on loopback whose server certificate names a CRL distribution
 * point served over HTTP on loopback; the setting changed with `opencmg site client-communication`
 * reaches the client with its policy, and `opencmg client run --once` refuses the management point
 * once its certificate is revoked (with the check on) and goes ahead with the check off.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { createCrl, issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import { makeMpPki, MP_FQDN, openMpSite, startTestMp, type MpPki, type MpSite } from "../../helpers/mp-testkit.ts";
import type { ManagementPoint } from "../../../src/roles/mp/server.ts";

const DAY = 86_400_000;
let pki: MpPki;
let files: string;
let crlServer: Server;
/** What the CRL distribution point serves now (PEM). */
let crlPem = "";
let crlRequests = 0;
let mpCert: IssuedCert;
let s: MpSite;
let mp: ManagementPoint;

const siteCli = (args: string[]) => runCli(["--data", s.dataDir, ...args]);
const client = (dir: string, args: string[]) => runCli(["client", ...args, "--client-dir", dir]);

async function publishCrl(revoked: IssuedCert[]): Promise<void> {
  crlPem = await createCrl({ issuer: pki.siteCa, revoked: revoked.map((c) => ({ serialHex: c.serialHex })), nextUpdate: new Date(Date.now() + 7 * DAY) });
}

before(async () => {
  pki = await makeMpPki();
  files = mkdtempSync(join(tmpdir(), "opencmg-commsec-"));
  crlServer = createServer((req, res) => {
    crlRequests++;
    if (req.url !== "/site.crl") return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/pkix-crl" }).end(crlPem);
  });
  await new Promise<void>((r) => crlServer.listen(0, "127.0.0.1", r));
  const crlUrl = `http://127.0.0.1:${(crlServer.address() as AddressInfo).port}/site.crl`;
  // The management point's server certificate names the site CA's CRL.
  mpCert = await issueCert({ issuer: pki.siteCa, commonName: MP_FQDN, dnsNames: [MP_FQDN], ipAddresses: ["127.0.0.1"], usage: "server", crlUrl });
  await publishCrl([]);
  const data = tempDir();
  s = await openMpSite({ kind: "sqlite", fresh: async () => ({ dataDir: data, databaseUrl: undefined }) });
  mp = await startTestMp(s, { ...pki, mpServer: mpCert });
  writeFileSync(join(files, "ca.pem"), pki.caPem);
  writeFileSync(join(files, "pc1.pem"), pki.client.certPem);
  writeFileSync(join(files, "pc1.key"), pki.client.keyPem, { mode: 0o600 });
});
after(async () => {
  await mp?.close();
  await s?.site.close();
  crlServer?.close();
  rmSync(files, { recursive: true, force: true });
});

it("a client refuses a site system whose server certificate the published CRL revokes, unless the site turned CRL checking off", async () => {
  const dir = join(files, "agent");
  const inst = await client(dir, ["install", "--mp", mp.url, "--cert", join(files, "pc1.pem"), "--key", join(files, "pc1.key"), "--ca", join(files, "ca.pem"), "--name", "PC-001", "--json"]);
  assert.equal(inst.code, 0, inst.stderr);
  assert.ok(crlRequests > 0, "the client fetched the CRL the MP's certificate names");

  // Both settings are on by default.
  const shown = await siteCli(["site", "client-communication", "--json"]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.deepEqual(shown.json(), { usePkiClientCertificate: true, clientsCheckCrl: true });

  // The MP's certificate is not revoked: the client goes ahead and its policy carries the setting.
  let run = await client(dir, ["run", "--once", "--json"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.json().policy, true);
  assert.equal(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")).policy.clientsCheckCrl, true);

  // The CA revokes the MP's certificate: the client refuses the MP and says why.
  await publishCrl([mpCert]);
  run = await client(dir, ["run", "--once", "--json"]);
  const refused = run.json();
  assert.equal(refused.mp, null, run.stdout);
  assert.match(refused.errors.join("; "), /SERVER_CERT_REVOKED: refused 127\.0\.0\.1: its server certificate is revoked: certificate serial/);
  const log = readFileSync(join(dir, "logs", "LocationServices.log"), "utf8");
  assert.match(log, /Refused site system 127\.0\.0\.1: SERVER_CERT_REVOKED/);

  // An administrator who does not publish a CRL turns the check off; with the certificate not revoked
  // the policy reaches the client, which from then on skips the check.
  await publishCrl([]);
  // A bad value is refused naming the flag as typed, and changes nothing.
  const bad = await siteCli(["site", "client-communication", "--check-crl", "of", "--use-pki-client-cert", "off"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: --check-crl: must be on or off \(got "of"\)/);
  assert.deepEqual((await siteCli(["site", "client-communication", "--json"])).json(), { usePkiClientCertificate: true, clientsCheckCrl: true });
  const off = await siteCli(["site", "client-communication", "--check-crl", "off", "--json"]);
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(off.json(), { usePkiClientCertificate: true, clientsCheckCrl: false });
  run = await client(dir, ["run", "--once", "--json"]);
  assert.equal(run.json().policy, true, run.stdout);
  assert.equal(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")).policy.clientsCheckCrl, false);

  await publishCrl([mpCert]);
  const before = crlRequests;
  run = await client(dir, ["run", "--once", "--json"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.json().mp, mp.url, run.stdout);
  assert.deepEqual(run.json().errors, []);
  assert.equal(crlRequests, before, "with the check off the client fetches no CRL");

  // The change is audited.
  const audit = await s.site.services.audit.list({ action: "sites.setClientCommunication" });
  assert.equal(audit.items.length, 1);
});
