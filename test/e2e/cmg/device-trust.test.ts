/**
 * Trust in devices that register with tokens, played as an attacker would, with real processes:
 * `opencmg up` (site, management point, CMG instances, connection point), a real OpenID provider
 * on loopback, the CLI as administrator and device, and the client's own modules for the request
 * the CLI never makes (a key change proof signed by the wrong key).
 *
 * - A directory ID token registers once: the same token replayed with another key is refused,
 *   and the device that used it keeps working.
 * - A device's bound key is replaced only with a proof made by the old key, or after an
 *   administrator approved the new key; the refusal says which.
 * - A bulk registration token registers many devices, each once (the same device again gets its
 *   own client); `--max-uses` caps it; `token list-bulk` counts the devices.
 * - A certificate registration and an approved request registration give a client token, and a
 *   certificate client moves off its certificate with it.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { calculateJwkThumbprint, decodeJwt } from "jose";
import { DEVICE_CLAIM, DEVICE_CLIENT_ID, startDirectory, type TestDirectory } from "../../helpers/oidc-provider.ts";
import { startUp, type UpProcess } from "../../helpers/up-process.ts";
import { until } from "../../helpers/until.ts";
import { loadOrCreateTokenKey } from "../../../src/client/token-key.ts";
import { MpRefusedError, MpTransport } from "../../../src/client/transport.ts";
import { makeKeyChangeProof } from "../../../src/wire/key-proof.ts";
import { MP_PATHS, type RegisterAnswer } from "../../../src/wire/mp.ts";

describe("device trust: ID tokens once, key changes proven, bulk tokens for many devices, client tokens for every client", () => {
  let up: UpProcess;
  let directory: TestDirectory;
  let tokenUrl: string;
  before(async () => {
    directory = await startDirectory();
    up = await startUp("opencmg-device-trust-");
    tokenUrl = up.facts.internetMpUrl.replace("/CCM_Proxy_MutualAuth/", "/CCM_Proxy_ServerAuth/");
    // The issuer last (see directory.test.ts): pushed before its audience, it would refuse for the audience meanwhile.
    for (const [k, v] of [["oidc-audience", DEVICE_CLIENT_ID], ["oidc-device-claim", DEVICE_CLAIM], ["oidc-issuer", directory.issuer]]) {
      const r = up.site(["settings", "set", k!, v!]);
      assert.equal(r.status, 0, r.stderr);
    }
  });
  after(async () => {
    if (up) assert.equal(await up.stop(), 0, up.output());
    await directory?.close();
  });

  const ca = () => join(up.data, "pki", "test", "root-ca.pem");
  const folder = (dir: string) => join(up.dir, dir);
  const installWithIdToken = (dir: string, idToken: string) => {
    const file = join(up.dir, `${dir}.id-token`);
    writeFileSync(file, idToken, { mode: 0o600 });
    return up.cli(["client", "install", "--mp", tokenUrl, "--id-token", file, "--ca", ca(), "--name", dir.toUpperCase(), "--client-dir", folder(dir), "--json"]);
  };
  const installWithBulk = (dir: string, token: string) => up.cli(["client", "install", "--mp", tokenUrl, "--token", token, "--ca", ca(), "--name", dir.toUpperCase(), "--client-dir", folder(dir), "--json"]);
  const runOnce = (dir: string) => up.cli(["client", "run", "--once", "--client-dir", folder(dir), "--json"]);
  const registrationLog = () => readFileSync(join(up.data, "logs", "MP_RegistrationManager.log"), "latin1");
  const keyOf = (dir: string) => loadOrCreateTokenKey(join(folder(dir), "token-key.pem"));

  let aliceId = "";

  it("a directory ID token registers once: replayed with another key it is refused, and the device keeps working", async () => {
    const idToken = await directory.deviceSignIn("alice");
    // The directory's keys reach the instances with the next settings push.
    const inst = await until("the gateway to take the directory's ID token", () => {
      const r = installWithIdToken("pc-alice", idToken);
      if (r.status !== 0) assert.match(r.stderr, /401 (untrusted_issuer|unknown_key)/, "refused only until the directory keys arrive");
      return r.status === 0 && r;
    });
    aliceId = inst.json().clientId;

    // The attacker copied the ID token and presents it from another machine (a new key, k2).
    const replay = installWithIdToken("pc-thief", idToken);
    assert.equal(replay.status, 1, replay.stdout);
    assert.match(replay.stderr, /401 id_token_replayed: .*registers once/);
    assert.match(registrationLog(), new RegExp(`Refused a replayed directory ID token for .* it registered ${aliceId} before`));

    const run = runOnce("pc-alice");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.json().policy, true);
    assert.equal(up.cli(["client", "renew-token", "--client-dir", folder("pc-alice")]).status, 0);
  });

  it("a device's key is replaced only with a proof made by the old key or an administrator's approval, and the refusal says which", async () => {
    assert.ok(aliceId, "the first test registered alice");
    // A fresh, valid ID token for the same directory device, but from a machine with another key.
    const other = installWithIdToken("pc-alice-new", await directory.deviceSignIn("alice"));
    assert.equal(other.status, 1, other.stdout);
    const newJkt = (await keyOf("pc-alice-new")).jkt;
    assert.match(other.stderr, /403 key_change_unproven: .*only with a proof made by the old key .*or after an administrator approves the new key/);
    assert.ok(other.stderr.includes(`opencmg site clients approve-key ${aliceId} -- ${newJkt}`), other.stderr);
    assert.equal(runOnce("pc-alice").status, 0, "the real device keeps working");

    // A proof signed by the attacker's own key is no proof.
    const caPem = readFileSync(ca(), "utf8");
    const k3 = await loadOrCreateTokenKey(join(up.dir, "k3.pem"));
    const t = new MpTransport({ ca: [caPem] }, {});
    try {
      t.useProvenToken(await directory.deviceSignIn("alice"), k3);
      const body = { name: "PC-ALICE", keyChangeProof: await makeKeyChangeProof(k3, aliceId, k3.jkt) };
      await assert.rejects(t.call<RegisterAnswer>(tokenUrl, MP_PATHS.register, { body }), (e: unknown) => e instanceof MpRefusedError && e.status === 400 && e.reason === "invalid_key_proof");
    } finally {
      await t.close();
    }
    assert.equal(runOnce("pc-alice").status, 0);

    // The device itself moves to a new key, proving the move with its old key: same client.
    const k1 = (await keyOf("pc-alice")).jkt;
    const file = join(up.dir, "pc-alice-rotate.id-token");
    writeFileSync(file, await directory.deviceSignIn("alice"), { mode: 0o600 });
    const rotated = up.cli(["client", "install", "--mp", tokenUrl, "--id-token", file, "--new-key", "--ca", ca(), "--name", "PC-ALICE", "--client-dir", folder("pc-alice"), "--json"]);
    assert.equal(rotated.status, 0, rotated.stderr);
    assert.equal(rotated.json().clientId, aliceId);
    const k2 = (await keyOf("pc-alice")).jkt;
    assert.notEqual(k2, k1);
    assert.equal((decodeJwt(readFileSync(join(folder("pc-alice"), "client-token"), "utf8").trim()).cnf as { jkt: string }).jkt, k2);
    assert.match(registrationLog(), new RegExp(`key ${k1} replaced by ${k2} \\(proof made by the old key\\)`));
    assert.equal(runOnce("pc-alice").status, 0, "the device goes on with its new key");

    // A device that lost its key: an administrator approves the new one (audited), then it registers.
    // A thumbprint is base64url: one in 64 starts with "-", which the printed "--" keeps from reading as an option.
    const dashed = up.site(["site", "clients", "approve-key", aliceId, "--json", "--", `-${newJkt.slice(1)}`]);
    assert.equal(dashed.status, 0, dashed.stderr);
    assert.equal(dashed.json().approvedTokenKey, `-${newJkt.slice(1)}`);
    const approved = up.site(["site", "clients", "approve-key", aliceId, "--json", "--", newJkt]);
    assert.equal(approved.status, 0, approved.stderr);
    assert.equal(approved.json().approvedTokenKey, newJkt);
    assert.equal(up.site(["site", "clients", "approve-key", aliceId, "not-a-thumbprint"]).status, 2);
    const audit = up.site(["audit", "--json"]).json() as { action: string; object: string }[];
    assert.ok(audit.some((a) => a.action === "clients.approveKey" && a.object === `client/${aliceId}`), JSON.stringify(audit.slice(0, 3)));
    const again = installWithIdToken("pc-alice-new", await directory.deviceSignIn("alice"));
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.json().clientId, aliceId);
    assert.equal(runOnce("pc-alice-new").status, 0);
    const superseded = runOnce("pc-alice");
    assert.equal(superseded.status, 1);
    assert.match(superseded.stderr, /401 token_key_mismatch/);
    const listed = (up.site(["site", "clients", "--json"]).json() as { id: string; tokenKey: string; approvedTokenKey: string | null }[]).find((c) => c.id === aliceId);
    assert.deepEqual([listed?.tokenKey, listed?.approvedTokenKey], [newJkt, null], "the approval is used up");
  });

  it("a bulk token registers many devices, each once; --max-uses caps it; list-bulk counts them", async () => {
    const bulk = up.site(["token", "create-bulk", "--json"]).json() as { id: string; token: string; maxUses: number | null };
    const ids: string[] = [];
    for (const pc of ["pc-b1", "pc-b2", "pc-b3"]) {
      const r = installWithBulk(pc, bulk.token);
      assert.equal(r.status, 0, r.stderr);
      ids.push(r.json().clientId);
    }
    assert.equal(new Set(ids).size, 3, "three devices, three clients");
    assert.equal(bulk.maxUses, null, "no cap unless asked");
    // The same device presenting it again gets its own client, not a fourth one.
    const again = installWithBulk("pc-b1", bulk.token);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.json().clientId, ids[0]);
    for (const pc of ["pc-b1", "pc-b2", "pc-b3"]) assert.equal(runOnce(pc).status, 0, pc);

    assert.equal(up.site(["token", "create-bulk", "--max-uses", "0"]).status, 2);
    assert.match(up.site(["token", "create-bulk", "--max-uses", "0"]).stderr, /maxUses: must be from 1 to 1000000 devices/);
    const capped = up.site(["token", "create-bulk", "--max-uses", "2", "--json"]).json() as { id: string; token: string; maxUses: number };
    assert.equal(capped.maxUses, 2);
    const c1 = installWithBulk("pc-c1", capped.token);
    assert.equal(c1.status, 0, c1.stderr);
    assert.equal(installWithBulk("pc-c2", capped.token).status, 0);
    const third = installWithBulk("pc-c3", capped.token);
    assert.equal(third.status, 1);
    assert.match(third.stderr, /401 bulk_token_used: .*registered as many devices as it may \(2, its --max-uses\)/);
    assert.equal(installWithBulk("pc-c1", capped.token).json().clientId, c1.json().clientId, "a device it registered is still itself");

    const list = up.site(["token", "list-bulk", "--json"]).json() as { id: string; devices: number; maxUses: number | null; state: string }[];
    const pick = (id: string) => list.find((b) => b.id === id) && (({ devices, maxUses, state }) => ({ devices, maxUses, state }))(list.find((b) => b.id === id)!);
    assert.deepEqual(pick(bulk.id), { devices: 3, maxUses: null, state: "active" });
    assert.deepEqual(pick(capped.id), { devices: 2, maxUses: 2, state: "used" });
    assert.match(up.site(["token", "list-bulk"]).stdout, /^ID +STATE +DEVICES +MAXUSES/);
    const res = await fetch(`${up.facts.siteUrl}/api/v1/tokens/bulk`, { headers: { authorization: `Bearer ${up.facts.adminToken}` } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { id: string; devices: number }[]).find((b) => b.id === bulk.id)?.devices, 3);
    const viaApi = await fetch(`${up.facts.siteUrl}/api/v1/tokens/bulk`, { method: "POST", headers: { authorization: `Bearer ${up.facts.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ maxUses: 5 }) });
    assert.equal(viaApi.status, 201);
    assert.equal(((await viaApi.json()) as { maxUses: number }).maxUses, 5);
  });

  it("a certificate registration gets a client token, and the client moves off its certificate with it", async () => {
    const install = up.cli([...up.facts.clientInstall.slice(2), "--name", "PC-CERT", "--client-dir", folder("pc-cert"), "--json"]);
    assert.equal(install.status, 0, install.stderr);
    const clientId = install.json().clientId as string;
    const tokenFile = join(folder("pc-cert"), "client-token");
    assert.ok(existsSync(tokenFile), "the client keeps the client token it got");
    const claims = decodeJwt(readFileSync(tokenFile, "utf8").trim());
    assert.equal(claims.sub, clientId);
    const key = await keyOf("pc-cert");
    assert.equal((claims.cnf as { jkt: string }).jkt, await calculateJwkThumbprint(key.publicJwk, "sha256"));
    assert.equal(runOnce("pc-cert").status, 0, "still a certificate client");

    // Installed again at the CMG's token URL, without --cert: the same client, by its client token.
    const moved = up.cli(["client", "install", "--mp", tokenUrl, "--ca", ca(), "--name", "PC-CERT", "--client-dir", folder("pc-cert"), "--json"]);
    assert.equal(moved.status, 0, moved.stderr);
    assert.equal(moved.json().clientId, clientId);
    const run = runOnce("pc-cert");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.json().policy, true);
    assert.equal(JSON.parse(readFileSync(join(folder("pc-cert"), "client.json"), "utf8")).hasCertificate, false);
  });

  it("an approved request registration gets a client token", async () => {
    const install = up.cli(["client", "install", "--mp", up.facts.mpUrl, "--ca", join(up.data, "pki", "site-ca.pem"), "--name", "PC-REQUEST", "--client-dir", folder("pc-request"), "--json"]);
    assert.equal(install.status, 0, install.stderr);
    const clientId = install.json().clientId as string;
    assert.equal(install.json().approved, false);
    assert.ok(!existsSync(join(folder("pc-request"), "client-token")), "no client token before approval");
    assert.equal(up.site(["site", "clients", "approve", clientId]).status, 0);
    // An intranet client: a management point slower than the 3 s default probe (a loaded machine)
    // would make it decide "internet", where this site has no CMG for it.
    const run = up.cli(["client", "run", "--once", "--client-dir", folder("pc-request"), "--json", "--probe-timeout", "1m"]);
    assert.equal(run.status, 0, run.stderr);
    const token = readFileSync(join(folder("pc-request"), "client-token"), "utf8").trim();
    assert.equal(decodeJwt(token).sub, clientId);
    assert.equal((decodeJwt(token).cnf as { jkt: string }).jkt, (await keyOf("pc-request")).jkt);
  });
});
