/**
 * Devices without a certificate, with real processes: `opencmg up` (site, management point, CMG
 * instances, connection point), then the CLI as an administrator and as the device. A bulk
 * registration token installs a device that is then managed through `/CCM_Proxy_ServerAuth/`,
 * renews its client token, keeps working across a signing-key rotation, and is stopped by
 * `site clients block` at the gateway. A bulk token registers every device that presents it while
 * valid (each its own client), and none once revoked.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runBin, startUp, type UpProcess } from "../../helpers/up-process.ts";
import { until } from "../../helpers/until.ts";
import { ClientAgent } from "../../../src/client/agent.ts";

describe("bulk registration tokens and client tokens through the gateway", () => {
  let up: UpProcess;
  let tokenUrl: string;
  const secrets: string[] = [];
  before(async () => {
    up = await startUp("opencmg-tokens-");
    tokenUrl = up.facts.internetMpUrl.replace("/CCM_Proxy_MutualAuth/", "/CCM_Proxy_ServerAuth/");
  });
  after(async () => {
    if (up) assert.equal(await up.stop(), 0, up.output());
  });

  const ca = () => join(up.data, "pki", "test", "root-ca.pem");
  const createBulk = (lifetime?: string): { id: string; token: string; expiresAt: string } => {
    const r = up.site(["token", "create-bulk", "--json", ...(lifetime ? ["--lifetime", lifetime] : [])]);
    assert.equal(r.status, 0, r.stderr);
    secrets.push(r.json().token);
    return r.json();
  };
  const install = (dir: string, token: string, name: string) =>
    up.cli(["client", "install", "--mp", tokenUrl, "--token", token, "--ca", ca(), "--name", name, "--client-dir", join(up.dir, dir), "--json"]);
  const runOnce = (dir: string) => up.cli(["client", "run", "--once", "--client-dir", join(up.dir, dir), "--json"]);

  it("refuses a bulk token lifetime over 7 days, naming the field", () => {
    const r = up.site(["token", "create-bulk", "--lifetime", "10081"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /lifetime: must be from 1 to 10080 minutes/);
    const d = createBulk();
    const days = (Date.parse(d.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 2.9 && days <= 3, `default lifetime is 3 days (${days})`);
  });

  it("installs a device with no certificate, manages it through the gateway, renews its token, survives a key rotation, and block stops it", async () => {
    const bulk = createBulk("60");
    const inst = install("pc1", bulk.token, "PC-TOKEN-1");
    assert.equal(inst.status, 0, inst.stderr);
    const clientId = inst.json().clientId as string;
    const folder = join(up.dir, "pc1");
    assert.equal(statSync(join(folder, "client-token")).mode & 0o777, 0o600);
    assert.equal(statSync(join(folder, "token-key.pem")).mode & 0o777, 0o600);
    assert.ok(!readdirSync(folder).includes("client.pem"), "no certificate anywhere");
    const firstToken = readFileSync(join(folder, "client-token"), "utf8").trim();
    secrets.push(firstToken);

    assert.equal(up.cli(["client", "send-status", "--client-dir", folder, "--id", "10801", "--text", "via a token", "--count", "2"]).status, 0);
    const run = runOnce("pc1");
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.json().uploaded, 2);
    const candidates = up.cli(["client", "locate", "--client-dir", folder, "--json"]).json() as { type: string; url: string }[];
    assert.deepEqual(candidates.map((c) => c.url), [tokenUrl], "the location answer names the CMG's token URL, and no intranet MP");
    const listed = (up.site(["site", "clients", "--json"]).json() as { id: string; connectionType: string; tokenKey: string | null }[]).find((c) => c.id === clientId);
    assert.equal(listed?.connectionType, "internet");
    assert.ok(listed?.tokenKey);
    const list = up.site(["token", "list-bulk", "--json"]).json() as { id: string; state: string; devices: number }[];
    assert.deepEqual(list.find((b) => b.id === bulk.id) && { state: list.find((b) => b.id === bulk.id)!.state, devices: list.find((b) => b.id === bulk.id)!.devices }, { state: "active", devices: 1 });

    // The agent renews by itself once the token is older than the renewal age (30 days; 0 here).
    const events: string[] = [];
    const agent = new ClientAgent({ dir: folder, tokenRenewAfterMs: 0, onEvent: (e) => events.push(e.type) });
    try {
      const cycle = await agent.cycle();
      assert.deepEqual(cycle.errors, []);
    } finally {
      await agent.close();
    }
    assert.ok(events.includes("token-renewed"), events.join(", "));
    const autoRenewed = readFileSync(join(folder, "client-token"), "utf8").trim();
    secrets.push(autoRenewed);
    assert.notEqual(autoRenewed, firstToken);

    // Renewal on demand: a new client token, still bound to the device's key; the device goes on with it.
    const renewed = up.cli(["client", "renew-token", "--client-dir", folder, "--json"]);
    assert.equal(renewed.status, 0, renewed.stderr);
    const secondToken = readFileSync(join(folder, "client-token"), "utf8").trim();
    secrets.push(secondToken);
    assert.notEqual(secondToken, autoRenewed);
    assert.equal(runOnce("pc1").status, 0);

    // Signing-key rotation: the token signed by the old key still works (overlap); a renewal signed
    // by the new key works once the instances have the new key (pushed within the poll interval).
    const rotated = up.site(["token", "rotate-signing-key", "--json"]);
    assert.equal(rotated.status, 0, rotated.stderr);
    assert.equal(runOnce("pc1").status, 0, "the token of the previous key is still accepted");
    assert.equal(up.cli(["client", "renew-token", "--client-dir", folder]).status, 0);
    const third = readFileSync(join(folder, "client-token"), "utf8").trim();
    secrets.push(third);
    assert.equal(JSON.parse(Buffer.from(third.split(".")[0]!, "base64url").toString()).kid, rotated.json().current);
    await until("the instances to accept the new signing key", () => runOnce("pc1").status === 0);

    // Block: refused at the gateway (401 blocked) once the settings reach the instances.
    const blocked = up.site(["site", "clients", "block", clientId]);
    assert.equal(blocked.status, 0, blocked.stderr);
    // The management points refuse it at once; the instances once the block list reaches them.
    const refusedAt = await until("the gateway to refuse the blocked client", () => {
      const r = runOnce("pc1");
      assert.equal(r.status, 1, "a blocked client is never served");
      assert.match(r.stderr, /403 client_blocked|401 blocked/);
      return /401 blocked/.test(r.stderr) && r;
    });
    assert.match(refusedAt.stderr, /block list check/);
    assert.ok(readFileSync(join(up.data, "logs", "CMGHttpHandler.log"), "utf8").includes("refused with 401 blocked"));
  });

  it("a bulk token registers a second device as its own client; a revoked token registers none", () => {
    const bulk = createBulk();
    // Given on standard input: the token stays out of the process list.
    const viaStdin = runBin(["client", "install", "--mp", tokenUrl, "--token", "-", "--ca", ca(), "--name", "PC-TOKEN-2", "--client-dir", join(up.dir, "pc2"), "--json"], bulk.token + "\n");
    assert.equal(viaStdin.status, 0, viaStdin.stderr);
    const second = install("pc3", bulk.token, "PC-TOKEN-3");
    assert.equal(second.status, 0, second.stderr);
    assert.notEqual(second.json().clientId, viaStdin.json().clientId);

    const revoked = createBulk();
    const r = up.site(["token", "revoke-bulk", revoked.id, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json().state, "revoked");
    const late = install("pc4", revoked.token, "PC-TOKEN-4");
    assert.equal(late.status, 1);
    assert.match(late.stderr, /401 bulk_token_revoked/);
    assert.equal(up.site(["token", "revoke-bulk", "not-an-id"]).status, 2);
  });

  it("no token or signing key in the site's logs or its API", async () => {
    const logs = join(up.data, "logs");
    const text = readdirSync(logs).map((f) => readFileSync(join(logs, f), "latin1")).join("\n");
    for (const s of secrets) assert.ok(!text.includes(s.split(".")[2]!), "a token signature appears in a log");
    for (const path of ["/api/v1/clients", "/api/v1/tokens/bulk", "/api/v1/tokens/signing-keys"]) {
      const res = await fetch(`${up.facts.siteUrl}${path}`, { headers: { authorization: `Bearer ${up.facts.adminToken}` } });
      assert.equal(res.status, 200, path);
      const body = await res.text();
      for (const s of secrets) assert.ok(!body.includes(s.split(".")[2]!), path);
      assert.doesNotMatch(body, /PRIVATE|"d":|private_key/, path);
    }
    const keys = up.site(["token", "signing-keys", "--json"]);
    assert.doesNotMatch(keys.stdout, /PRIVATE|"d"/);
  });
});
