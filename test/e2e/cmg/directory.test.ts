/**
 * Directory sign-in with real processes: a real OpenID provider on loopback (`oidc-provider`),
 * `opencmg up`, and the CLI. The site trusts the directory (`settings set oidc-issuer ...`); the
 * site reads the directory's keys through discovery and its JWKS and pushes them to the gateway.
 * A device that signed in with the device authorization grant installs with its ID token, is
 * managed through `/CCM_Proxy_ServerAuth/`, renews its client token and is stopped by `block`; the
 * same directory device keeps its client ID (reinstalled with a new key once an administrator
 * approved that key); an ID token of a directory the site does not trust is refused at the gateway.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import { DEVICE_CLAIM, DEVICE_CLIENT_ID, startDirectory, type TestDirectory } from "../../helpers/oidc-provider.ts";
import { startUp, type UpProcess } from "../../helpers/up-process.ts";
import { until } from "../../helpers/until.ts";

describe("directory sign-in (OpenID Connect) through the gateway", () => {
  let up: UpProcess;
  let directory: TestDirectory;
  let stranger: TestDirectory;
  let tokenUrl: string;
  before(async () => {
    directory = await startDirectory();
    stranger = await startDirectory();
    up = await startUp("opencmg-directory-");
    tokenUrl = up.facts.internetMpUrl.replace("/CCM_Proxy_MutualAuth/", "/CCM_Proxy_ServerAuth/");
  });
  after(async () => {
    if (up) assert.equal(await up.stop(), 0, up.output());
    await directory?.close();
    await stranger?.close();
  });

  const ca = () => join(up.data, "pki", "test", "root-ca.pem");
  const install = (dir: string, idToken: string) => {
    const file = join(up.dir, `${dir}.id-token`);
    writeFileSync(file, idToken, { mode: 0o600 });
    return up.cli(["client", "install", "--mp", tokenUrl, "--id-token", file, "--ca", ca(), "--name", dir.toUpperCase(), "--client-dir", join(up.dir, dir), "--json"]);
  };
  const runOnce = (dir: string) => up.cli(["client", "run", "--once", "--client-dir", join(up.dir, dir), "--json"]);

  it("refuses an issuer that is not an https URL, naming the setting", () => {
    const r = up.site(["settings", "set", "oidc-issuer", "http://directory.example.test/"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /oidc-issuer: must be an https:\/\/ issuer URL/);
  });

  it("a device signed in at the trusted directory is installed, managed, renews its token and is stopped by block", async () => {
    // The issuer last: each setting reaches the instances with the next push, and an issuer pushed
    // before its audience would refuse the token for its audience (wrong_audience) meanwhile.
    for (const [k, v] of [["oidc-audience", DEVICE_CLIENT_ID], ["oidc-device-claim", DEVICE_CLAIM], ["oidc-issuer", directory.issuer]]) {
      const r = up.site(["settings", "set", k!, v!]);
      assert.equal(r.status, 0, r.stderr);
    }
    const idToken = await directory.deviceSignIn("alice");
    assert.equal(decodeJwt(idToken).iss, directory.issuer);

    // The directory's keys reach the instances with the next settings push.
    const inst = await until("the gateway to take the directory's ID token", () => {
      const r = install("pc-alice", idToken);
      if (r.status !== 0) assert.match(r.stderr, /401 (untrusted_issuer|unknown_key)/, "refused only until the directory keys arrive");
      return r.status === 0 && r;
    });
    const clientId = inst.json().clientId as string;
    const run = runOnce("pc-alice");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.json().policy, true);
    assert.equal(up.cli(["client", "renew-token", "--client-dir", join(up.dir, "pc-alice")]).status, 0);
    assert.equal(runOnce("pc-alice").status, 0);

    // The same directory device signing in again (a reinstall, a new key): refused until an
    // administrator approves the new key, then it keeps its client ID.
    const refused = install("pc-alice-2", await directory.deviceSignIn("alice"));
    assert.equal(refused.status, 1);
    // The administrator runs the command the refusal prints, as printed (its thumbprint may start with "-").
    const printed = /opencmg (site clients approve-key \S+ -- [A-Za-z0-9_-]{43})/.exec(refused.stderr)?.[1];
    assert.ok(printed, refused.stderr);
    const approved = up.site(printed.split(" "));
    assert.equal(approved.status, 0, approved.stderr);
    const again = install("pc-alice-2", await directory.deviceSignIn("alice"));
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.json().clientId, clientId);
    const bob = install("pc-bob", await directory.deviceSignIn("bob"));
    assert.equal(bob.status, 0, bob.stderr);
    assert.notEqual(bob.json().clientId, clientId);

    // An ID token of a directory the site does not trust.
    const foreign = install("pc-mallory", await stranger.deviceSignIn("mallory"));
    assert.equal(foreign.status, 1);
    assert.match(foreign.stderr, /401 untrusted_issuer/);

    assert.equal(up.site(["site", "clients", "block", bob.json().clientId]).status, 0);
    await until("the gateway to refuse the blocked client", () => {
      const r = runOnce("pc-bob");
      assert.equal(r.status, 1);
      return /401 blocked/.test(r.stderr);
    });
    assert.equal(runOnce("pc-alice-2").status, 0, "the others go on");
    // Signing in again bound alice's client to the new install's key: the old install's token no longer fits.
    const superseded = runOnce("pc-alice");
    assert.equal(superseded.status, 1);
    assert.match(superseded.stderr, /401 token_key_mismatch/);
  });
});
