/**
 * The site's "Use PKI client certificate (client authentication capability) when available", with
 * real processes: `opencmg up` (site, management point, CMG instance, connection point) and the
 * CLI as the administrator and as the device. On (the default), a client holding a PKI client
 * certificate authenticates through the CMG with it (mutual TLS, /CCM_Proxy_MutualAuth/); off, the
 * same client authenticates with its client token (/CCM_Proxy_ServerAuth/), and the management
 * point's policy log says which one each request came with.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { startUp, type UpProcess } from "../../helpers/up-process.ts";

let up: UpProcess;
before(async () => {
  up = await startUp("opencmg-pki-pref-");
});
after(async () => {
  if (up) assert.equal(await up.stop(), 0, up.output());
});

/** Every MP_Policy.log under the data folder, as one text. */
function policyLog(): string {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === "MP_Policy.log") found.push(readFileSync(join(d, e.name), "utf8"));
    }
  };
  walk(up.data);
  return found.join("\n");
}

it("a client with a PKI client certificate uses it when the setting is on, and its client token when it is off", () => {
  const dir = join(up.dir, "pc-pki");
  const install = up.cli([...up.facts.clientInstall.slice(2), "--name", "PC-PKI", "--client-dir", dir, "--json"]);
  assert.equal(install.status, 0, install.stderr);
  const clientId = install.json().clientId as string;
  const runOnce = () => up.cli(["client", "run", "--once", "--client-dir", dir, "--json"]);
  const lines = () => policyLog().split("\n").filter((l) => l.includes(`Policy request from ${clientId}`));

  // On by default: mutual TLS at the CMG.
  let run = runOnce();
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.json().mp, up.facts.internetMpUrl);
  assert.match(lines().at(-1) ?? "", /authenticated by PKI client certificate \(mutual TLS, connection point/);

  // Off: the policy tells the client; from its next cycle it goes with its client token only.
  const off = up.site(["site", "client-communication", "--use-pki-client-cert", "off", "--json"]);
  assert.equal(off.status, 0, off.stderr);
  assert.deepEqual(off.json(), { usePkiClientCertificate: false, clientsCheckCrl: true });
  run = runOnce();
  assert.equal(run.status, 0, run.stderr);
  assert.equal(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")).policy.usePkiClientCertificate, false);
  run = runOnce();
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.json().mp, up.facts.internetMpUrl.replace("/CCM_Proxy_MutualAuth/", "/CCM_Proxy_ServerAuth/"), run.stdout);
  assert.deepEqual(run.json().errors, []);
  assert.match(lines().at(-1) ?? "", /authenticated by client token \(/);
  assert.match(readFileSync(join(dir, "logs", "CcmExec.log"), "utf8"), /"Use PKI client certificate \(client authentication capability\) when available" off/);

  // On again: back to its certificate.
  assert.equal(up.site(["site", "client-communication", "--use-pki-client-cert", "on"]).status, 0);
  assert.equal(runOnce().status, 0);
  run = runOnce();
  assert.equal(run.json().mp, up.facts.internetMpUrl, run.stdout);
  assert.match(lines().at(-1) ?? "", /authenticated by PKI client certificate \(mutual TLS/);
});
