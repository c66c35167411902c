/**
 * The client agent end to end with real parts: `opencmg client ...` in-process against a real HTTPS
 * management point on loopback, a second MP behind a stand-in CMG for the internet side, and the
 * site on SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, it } from "node:test";
import { runCli } from "../../helpers/cli.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { freePort } from "../../helpers/ports.ts";
import type { IssuedCert } from "../../../src/pki/issue.ts";
import { internetMpUrl, type InternetMp } from "../../../src/roles/mp/internet-mps.ts";
import { MP_PATHS } from "../../../src/wire/mp.ts";
import type { ManagementPoint } from "../../../src/roles/mp/server.ts";
import { makeMpPki, openMpSite, startStandinCmg, startTestMp, type MpPki, type MpSite } from "../../helpers/mp-testkit.ts";
import { ClientAgent, type AgentEvent } from "../../../src/client/agent.ts";

let pki: MpPki;
let files: string;
const dirs: string[] = [];

/** A certificate and key as files, the way an administrator hands them to `client install`. */
function certFiles(name: string, c: IssuedCert): { cert: string; key: string } {
  const cert = join(files, `${name}.pem`);
  const key = join(files, `${name}.key`);
  writeFileSync(cert, c.certPem);
  writeFileSync(key, c.keyPem, { mode: 0o600 });
  return { cert, key };
}

function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), "opencmg-client-"));
  dirs.push(d);
  return join(d, "agent");
}

before(async () => {
  pki = await makeMpPki();
  files = mkdtempSync(join(tmpdir(), "opencmg-client-files-"));
  writeFileSync(join(files, "ca.pem"), pki.caPem);
});
after(() => {
  rmSync(files, { recursive: true, force: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

forEachDatabase("client agent", (db) => {
  let s: MpSite;
  let mp: ManagementPoint;
  let internet: InternetMp[];
  let siteCli: (args: string[]) => ReturnType<typeof runCli>;
  const client = (dir: string, args: string[], env: NodeJS.ProcessEnv = {}) => runCli(["client", ...args, "--client-dir", dir], { env });
  const install = (dir: string, extra: string[] = [], c: IssuedCert = pki.client) => {
    const f = certFiles(c === pki.client ? "pc1" : "pc2", c);
    return client(dir, ["install", "--mp", mp.url, "--cert", f.cert, "--key", f.key, "--ca", join(files, "ca.pem"), "--name", c === pki.client ? "PC-001" : "PC-002", "--json", ...extra]);
  };

  beforeEach(async () => {
    s = await openMpSite(db);
    internet = [];
    mp = await startTestMp(s, pki, { internetMps: async () => internet });
    siteCli = (args) => runCli(["--data", s.dataDir, ...(s.databaseUrl ? ["--database", s.databaseUrl] : []), ...args]);
  });
  afterEach(async () => {
    await mp.close();
    await s.site.close();
  });

  it("install, locate, status, send-status and run --once against the intranet MP", async () => {
    // A CMG the client never needs while it is on the intranet (nothing listens there).
    internet = [{ url: internetMpUrl(`https://127.0.0.1:${await freePort()}`, s.roleId), cmg: "cmg1" }];
    const dir = newDir();
    const inst = await install(dir);
    assert.equal(inst.code, 0, inst.stderr);
    const r = inst.json();
    assert.match(r.clientId, /^GUID:/);
    assert.equal(r.approved, true);
    assert.equal((statSync(join(dir, "client.key")).mode & 0o777).toString(8), "600");
    assert.equal(readFileSync(join(dir, "client.pem"), "utf8"), pki.client.certPem);

    const loc = await client(dir, ["locate", "--json"]);
    assert.equal(loc.code, 0, loc.stderr);
    assert.deepEqual(
      loc.json().map((m: { type: string; url: string }) => [m.type, m.url]),
      [
        ["Intranet", `https://127.0.0.1:${s.port}`],
        ["Internet", internet[0]!.url],
      ],
    );
    const text = await client(dir, ["locate"]);
    assert.match(text.stdout, /^TYPE\s+URL\s+NAME\nIntranet\s+https:\/\/127.0.0.1:\d+\s+mp01.contoso.test\nInternet\s+https:.*cmg1\n$/);

    let st = (await client(dir, ["status", "--json"])).json();
    assert.equal(st.connectionType, "intranet");
    assert.equal(st.mpInUse, mp.url);
    assert.ok(st.lastLocationAt);
    assert.equal(st.lastPolicyAt, null);
    assert.equal(st.queuedUploads, 0);

    // OPENCMG_CLIENT_DIR works as the default folder.
    const queued = await runCli(["client", "send-status", "--id", "10002", "--text", "Hello from PC-001", "--count", "3", "--json"], { env: { OPENCMG_CLIENT_DIR: dir } });
    assert.equal(queued.code, 0, queued.stderr);
    assert.deepEqual(queued.json(), { queued: 3 });
    assert.equal((await client(dir, ["status", "--json"])).json().queuedUploads, 3);

    const run = await client(dir, ["run", "--once", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      { ...run.json<Record<string, unknown>>(), errors: undefined },
      { connectionType: "intranet", mp: mp.url, located: true, policy: true, uploaded: 3, queued: 0, uploadFailed: false, uploadRetryAfterMs: null, address: null, errors: undefined },
    );
    st = (await client(dir, ["status", "--json"])).json();
    assert.ok(st.lastPolicyAt);
    assert.ok(st.lastUploadAt);
    assert.equal(st.queuedUploads, 0);
    assert.equal(st.lastError, null);
    const human = await client(dir, ["status"]);
    assert.match(human.stdout, /connection\s+intranet/);
    assert.match(human.stdout, /queued uploads\s+0/);

    const list = await siteCli(["site", "clients", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.json().length, 1);
    assert.equal(list.json()[0].id, r.clientId);
    assert.equal(list.json()[0].connectionType, "intranet");
    assert.ok(list.json()[0].lastContactAt);
    const msgs = await siteCli(["status", "messages", "--json"]);
    const mine = msgs.json().filter((m: { clientId: string | null }) => m.clientId === r.clientId);
    assert.equal(mine.length, 3);
    assert.deepEqual(new Set(mine.map((m: { messageId: number; server: string; text: string }) => `${m.messageId} ${m.server} ${m.text}`)), new Set(["10002 PC-001 Hello from PC-001"]));
    assert.match(readFileSync(join(dir, "logs", "LocationServices.log"), "utf8"), /Location request to https:\/\/127.0.0.1:\d+ \(intranet\)/);
    assert.match(readFileSync(join(dir, "logs", "CcmMessaging.log"), "utf8"), /Uploaded 3 status message/);
  });

  it("moves to the Internet MP (the CMG) when the intranet MP stops answering, and back when it returns", async () => {
    const behindCmg = await startTestMp(s, pki, { port: await freePort(), internetMps: async () => internet });
    const cmg = await startStandinCmg({ target: () => behindCmg.url, pki });
    internet = [{ url: cmg.mpUrl(s.roleId), cmg: "cmg1" }];
    const dir = newDir();
    try {
      assert.equal((await install(dir)).code, 0);
      const candidates = (await client(dir, ["locate", "--json"])).json();
      assert.deepEqual(
        candidates.map((m: { type: string }) => m.type),
        ["Intranet", "Internet"],
      );
      let run = await client(dir, ["run", "--once", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().connectionType, "intranet");
      assert.equal(run.json().mp, mp.url);
      const relayedBefore = cmg.requests();

      // The device leaves the company network: the intranet MP no longer answers.
      await mp.close();
      await client(dir, ["send-status", "--id", "10003", "--text", "from the internet", "--count", "2"]);
      run = await client(dir, ["run", "--once", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().connectionType, "internet");
      assert.equal(run.json().mp, cmg.mpUrl(s.roleId));
      assert.equal(run.json().policy, true);
      assert.equal(run.json().uploaded, 2);
      assert.ok(cmg.requests() > relayedBefore);
      const st = (await client(dir, ["status", "--json"])).json();
      assert.equal(st.connectionType, "internet");
      assert.equal(st.mpInUse, cmg.mpUrl(s.roleId));
      const siteView = (await siteCli(["site", "clients", "--json"])).json();
      assert.equal(siteView[0].connectionType, "internet");

      // Back on the company network.
      mp = await startTestMp(s, pki, { internetMps: async () => internet });
      run = await client(dir, ["run", "--once", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().connectionType, "intranet");
      assert.equal(run.json().mp, mp.url);
      assert.equal((await siteCli(["site", "clients", "--json"])).json()[0].connectionType, "intranet");

      // With an internal probe configured, the probe decides: no answer there means internet.
      const closed = `https://127.0.0.1:${await freePort()}/`;
      run = await client(dir, ["run", "--once", "--json", "--internal-probe", closed]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().connectionType, "internet");
      run = await client(dir, ["run", "--once", "--json", "--internal-probe", `${mp.url}/SMS_MP/v1/ping`]);
      assert.equal(run.json().connectionType, "intranet");

      // An always-on-internet client uses the CMG even with the intranet MP answering.
      const dir2 = newDir();
      const inst = await install(dir2, ["--always-internet"], pki.client2);
      assert.equal(inst.code, 0, inst.stderr);
      run = await client(dir2, ["run", "--once", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().connectionType, "internet");
      assert.equal(run.json().mp, cmg.mpUrl(s.roleId));
      assert.equal((await client(dir2, ["status", "--json"])).json().alwaysInternet, true);
      const pc2 = (await siteCli(["site", "clients", "--json"])).json().find((c: { name: string }) => c.name === "PC-002");
      assert.equal(pc2.connectionType, "internet");
      assert.match(readFileSync(join(dir, "logs", "LocationServices.log"), "utf8"), /Client is currently internet; management point in use: https:\/\/127.0.0.1:\d+\/CCM_Proxy_MutualAuth\//);
    } finally {
      await cmg.stop();
      await behindCmg.close();
    }
  });

  it("1,000 queued status messages, MP stopped mid-way and agent restarted: every message in the site exactly once", async () => {
    const dir = newDir();
    const inst = await install(dir);
    assert.equal(inst.code, 0, inst.stderr);
    const clientId = inst.json().clientId as string;
    const queued = await client(dir, ["send-status", "--id", "10002", "--text", "bulk", "--count", "1000"]);
    assert.equal(queued.code, 0, queued.stderr);

    let stopping: Promise<void> | undefined;
    let sawFailure!: () => void;
    const failed = new Promise<void>((r) => (sawFailure = r));
    const events: AgentEvent[] = [];
    const agent = new ClientAgent({
      dir,
      batchSize: 50,
      retryBaseMs: 20,
      retryMaxMs: 200,
      onEvent: (e) => {
        events.push(e);
        if (e.type === "uploaded" && !stopping) stopping = mp.close(); // the MP goes away mid-way
        if (stopping && (e.type === "upload-failed" || (e.type === "cycle" && e.report.mp === null))) sawFailure();
      },
    });
    const abort = new AbortController();
    const running = agent.run(abort.signal);
    await failed;
    // The agent keeps retrying with back-off; now it stops too (a restart of the device).
    abort.abort();
    await running;
    await agent.close();
    await stopping;
    const left = (await client(dir, ["status", "--json"])).json().queuedUploads as number;
    assert.ok(left > 0 && left < 1000, `left ${left}`);
    const inSite = (await s.site.services.status.messages({ clientId: clientId, limit: 5000 })).length;
    assert.ok(inSite >= 1000 - left && inSite < 1000, `site ${inSite}, queue ${left}`);

    mp = await startTestMp(s, pki, { internetMps: async () => internet });
    const run = await client(dir, ["run", "--once", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().queued, 0);
    const msgs = await s.site.services.status.messages({ clientId: clientId, limit: 5000 });
    assert.equal(msgs.length, 1000);
    assert.equal(new Set(msgs.map((m) => m.properties.uploadId)).size, 1000);
    assert.deepEqual(
      msgs.map((m) => m.properties.sequence as number).sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i + 1),
    );
    assert.ok(events.some((e) => e.type === "uploaded"));
  });

  it("an upload whose answer is lost on the way back is retried and stored once", async () => {
    const behindCmg = await startTestMp(s, pki, { port: await freePort(), internetMps: async () => internet });
    let lost = 0;
    const cmg = await startStandinCmg({ target: () => behindCmg.url, pki, loseAnswer: (path) => path === MP_PATHS.status && lost++ === 0 });
    internet = [{ url: cmg.mpUrl(s.roleId), cmg: "cmg1" }];
    const dir = newDir();
    try {
      const inst = await install(dir, ["--always-internet"]);
      assert.equal(inst.code, 0, inst.stderr);
      const id = inst.json().clientId as string;
      await client(dir, ["send-status", "--id", "10002", "--text", "once", "--count", "5"]);
      let run = await client(dir, ["run", "--once", "--json"]);
      assert.equal(run.code, 1);
      assert.equal(run.json().connectionType, "internet");
      assert.equal(run.json().queued, 5);
      assert.match(run.stderr, /error: upload: .*12030/);
      assert.equal((await s.site.services.status.messages({ clientId: id })).length, 5); // stored, but the client does not know
      run = await client(dir, ["run", "--once", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.json().uploaded, 5);
      assert.equal((await s.site.services.status.messages({ clientId: id })).length, 5);
      assert.match(readFileSync(join(dir, "logs", "CcmMessaging.log"), "utf8"), /Uploaded 5 status message\(s\) to https:.*\(5 already held by the site\)/);
    } finally {
      await cmg.stop();
      await behindCmg.close();
    }
  });

  it("a client without certificate is registered once the site approves it; its uploads wait until then", async () => {
    const dir = newDir();
    const inst = await client(dir, ["install", "--mp", mp.url, "--ca", join(files, "ca.pem"), "--name", "KIOSK-01", "--json"]);
    assert.equal(inst.code, 0, inst.stderr);
    const id = inst.json().clientId as string;
    assert.equal(inst.json().approved, false);
    assert.equal((statSync(join(dir, "token")).mode & 0o777).toString(8), "600");
    assert.equal(existsSync(join(dir, "client.key")), false);
    await client(dir, ["send-status", "--id", "10002", "--text", "waiting"]);
    let run = await client(dir, ["run", "--once"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /awaiting_approval: client GUID:.* awaits approval: opencmg site clients approve GUID:/);
    assert.equal((await client(dir, ["status", "--json"])).json().queuedUploads, 1);
    assert.equal((await s.site.services.status.messages({ clientId: id })).length, 0);

    const listed = await siteCli(["site", "clients"]);
    assert.match(listed.stdout, /KIOSK-01\s+no\s+intranet/);
    const approve = await siteCli(["site", "clients", "approve", id]);
    assert.equal(approve.code, 0, approve.stderr);
    assert.match(approve.stdout, /Approved client GUID:/);
    run = await client(dir, ["run", "--once", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json().uploaded, 1);
    assert.equal((await s.site.services.status.messages({ clientId: id })).length, 1);
    assert.equal((await client(dir, ["status", "--json"])).json().approved, true);
    // Reinstalling keeps the token, and so the identity.
    const again = await client(dir, ["install", "--mp", mp.url, "--ca", join(files, "ca.pem"), "--name", "KIOSK-01", "--json"]);
    assert.equal(again.json().clientId, id);
    assert.equal(again.json().approved, true);
  });

  it("bad command lines and refused installs exit non-zero with a clear message and install nothing", async () => {
    const dir = newDir();
    const pc1 = certFiles("pc1", pki.client);
    const pc2 = certFiles("pc2", pki.client2);
    const untrusted = certFiles("untrusted", pki.untrustedClient);
    const cases: [string[], number, RegExp][] = [
      [["install", "--mp", "http://127.0.0.1:1"], 2, /^error: mp: must be an https:\/\/ URL/],
      [["install", "--mp", mp.url, "--cert", pc1.cert], 2, /^error: key: --cert and --key go together/],
      [["install", "--mp", mp.url, "--cert", pc1.cert, "--key", pc2.key], 2, /^error: key: is not the private key of the certificate/],
      [["install", "--mp", mp.url, "--cert", join(files, "missing.pem"), "--key", pc1.key], 2, /^error: cert: cannot read .*missing.pem \(ENOENT\)/],
      [["install", "--mp", mp.url, "--cert", untrusted.cert, "--key", untrusted.key, "--ca", join(files, "ca.pem")], 1, /403 untrusted_certificate: the client certificate .* is not trusted: untrusted_chain/],
      [["install", "--mp", mp.url, "--cert", pc1.cert, "--key", pc1.key], 1, /12175/], // the MP's certificate is not trusted without --ca
      [["status"], 2, /^error: no client is installed in .*: run opencmg client install/],
      [["locate"], 2, /^error: no client is installed/],
      [["send-status", "--id", "10002", "--text", "x"], 2, /^error: no client is installed/],
      [["run", "--once"], 2, /^error: no client is installed/],
    ];
    for (const [args, code, message] of cases) {
      const r = await client(dir, args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.equal(existsSync(join(dir, "client.json")), false);
    assert.equal(existsSync(join(dir, "client.key")), false);
    assert.equal((await s.site.services.status.messages()).filter((m) => m.source !== "site").length, 0);
    assert.equal((await siteCli(["site", "clients", "--json"])).json().length, 0);

    assert.equal((await install(dir)).code, 0);
    const more: [string[], RegExp][] = [
      [["send-status", "--id", "abc", "--text", "x"], /^error: id: must be a whole number from 0 to 2147483647/],
      [["send-status", "--id", "1", "--text", "x", "--count", "0"], /^error: count: must be a whole number from 1 to 100000/],
      [["send-status", "--id", "1", "--text", "x", "--severity", "fatal"], /^error: severity: must be informational, warning or error/],
      [["run", "--once", "--check-interval", "0"], /^error: check-interval: must be a duration/],
      [["run", "--once", "--internal-probe", "ftp://x"], /^error: internalProbe: must be an http:\/\/ or https:\/\/ URL/],
    ];
    for (const [args, message] of more) {
      const r = await client(dir, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    assert.equal((await client(dir, ["status", "--json"])).json().queuedUploads, 0);
    const bad = await siteCli(["site", "clients", "approve", "GUID:nope"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: id: must be a client ID/);
    const unknown = await siteCli(["site", "clients", "approve", "GUID:00000000-0000-0000-0000-000000000000"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: id: client GUID:00000000-0000-0000-0000-000000000000 does not exist/);
  });

  it("site clients settings changes the policy the clients receive", async () => {
    const set = await siteCli(["site", "clients", "settings", "--use-cmg", "off", "--location-interval", "120", "--always-internet", "on", "--json"]);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(set.json(), { locationIntervalMinutes: 120, policyIntervalMinutes: 60, useCmg: false, alwaysOnInternet: true });
    const bad = await siteCli(["site", "clients", "settings", "--use-cmg", "maybe"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: --use-cmg: must be on or off/);
    const badMinutes = await siteCli(["site", "clients", "settings", "--location-interval", "0"]);
    assert.equal(badMinutes.code, 2);
    assert.match(badMinutes.stderr, /^error: locationIntervalMinutes: must be from 1/);
    const dir = newDir();
    assert.equal((await install(dir)).code, 0);
    // Policy says always on internet, and there is no CMG for it: the client has no MP to use.
    const run = await client(dir, ["run", "--once", "--json"]);
    assert.equal(run.code, 0, run.stderr); // the first cycle still reached the intranet MP for its policy
    const again = await client(dir, ["run", "--once", "--json"]);
    assert.equal(again.code, 1);
    assert.equal(again.json().connectionType, "internet");
    assert.equal(again.json().mp, null);
  });
});
