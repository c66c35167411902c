/**
 * A device must not pass for the site. Real processes: a site made with the CLI, `opencmg mp
 * serve`, and two devices with valid client certificates (this test) playing the attack of the
 * issue: re-registering under the site server's name, taking another device's name, uploading
 * message 9471 from SMS_CLOUD_SERVICES_MANAGER dated 2099, and registering again while blocked.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { Agent, request } from "undici";
import { runCli } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/ports.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";
import { issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import { MP_PATHS } from "../../../src/wire/mp.ts";
import { forEachDatabase } from "../../helpers/databases.ts";

const MP = "mp01.contoso.test";
const SITE_SERVER = "site.opencmg.local";
const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

forEachDatabase("impersonation", (db) => {
  it("a device cannot take the site's name or another device's, upload as a site component, date its messages, or re-register while blocked", async () => {
    const { dataDir: data, databaseUrl } = await db.fresh();
    const where = ["--data", data, ...(databaseUrl ? ["--database", databaseUrl] : [])];
    const root = mkdtempSync(join(tmpdir(), "opencmg-impersonate-"));
    dirs.push(root);
    const pki = await makeTestPki();
    const port = await freePort();
    const cli = (args: string[]) => runCli([...where, ...args]);
    const file = (name: string, text: string) => (writeFileSync(join(root, name), text), join(root, name));
    assert.equal((await cli(["site", "init"])).code, 0);
    assert.equal((await cli(["server", "add", SITE_SERVER])).code, 0);
    assert.equal((await cli(["server", "add", MP])).code, 0);
    assert.equal((await cli(["role", "add", MP, "management-point", "--internal-url", `https://127.0.0.1:${port}`])).code, 0);

    const child = spawn(process.execPath, [OPENCMG_BIN, ...where, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${port}`, "--trusted-root", file("root.pem", pki.root.certPem), "--trusted-root", file("sub.pem", pki.intermediate.certPem)], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENCMG_DATA: "" } });
    children.add(child);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => (children.delete(child), r(code))));
    await until("the MP to serve", () => /serving https:\/\/127.0.0.1:\d+/.test(stderr) || child.exitCode !== null);

    const ca = readFileSync(join(data, "pki", "site-ca.pem"), "utf8");
    const agents: Agent[] = [];
    const device = (cert: IssuedCert) => {
      const agent = new Agent({ connect: { ca: [ca], cert: cert.certPem, key: cert.keyPem } });
      agents.push(agent);
      return async (path: string, body: unknown): Promise<{ status: number; json: { error?: string; message?: string; clientId?: string } }> => {
        const r = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        return { status: r.statusCode, json: (await r.body.json()) as { error?: string; message?: string; clientId?: string } };
      };
    };
    const mallory = device(pki.client);
    const other = device(await issueCert({ issuer: pki.intermediate, commonName: "PC-002", usage: "client" }));
    const upload = (m: Record<string, unknown>) => mallory(MP_PATHS.status, { messages: [{ type: "status", id: `u-${Math.random()}`, severity: "error", text: "CMG traffic critical", time: "2099-01-01T00:00:00.000Z", ...m }] });
    try {
      const reg = await mallory(MP_PATHS.register, { name: "PC-001" });
      assert.equal(reg.status, 200, JSON.stringify(reg.json));
      const id = reg.json.clientId!;

      // The site server's name (and its short name): refused, naming the field and the rule.
      for (const name of [SITE_SERVER, "SITE"]) {
        const r = await mallory(MP_PATHS.register, { name });
        assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.json)}`);
        assert.equal(r.json.error, "reserved_name");
        assert.match(r.json.message!, new RegExp(`^name: ${name} is the name of site system server ${SITE_SERVER}; a client cannot take a site system's name$`));
      }
      // Another device's name, in any letter case.
      const taken = await other(MP_PATHS.register, { name: "pc-001" });
      assert.equal(taken.status, 409, JSON.stringify(taken.json));
      assert.equal(taken.json.error, "name_taken");
      assert.match(taken.json.message!, new RegExp(`client ${id} already has the name pc-001; two clients cannot take the same name`));
      // Two devices racing for one name: one gets it (the database's unique key decides).
      const racers = await Promise.all([device(await issueCert({ issuer: pki.intermediate, commonName: "R1", usage: "client" })), device(await issueCert({ issuer: pki.intermediate, commonName: "R2", usage: "client" }))]);
      const race = await Promise.all(racers.map((r) => r(MP_PATHS.register, { name: "PC-RACE" })));
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 409], JSON.stringify(race.map((r) => r.json)));

      // The issue's message: a site component, a site message ID.
      const asSite = await upload({ messageId: 9471, component: "SMS_CLOUD_SERVICES_MANAGER" });
      assert.equal(asSite.status, 400, JSON.stringify(asSite.json));
      assert.equal(asSite.json.error, "site_component");
      assert.match(asSite.json.message!, /^messages\.0\.component: must not be a site component's name \(SMS_\*\)/);
      const siteId = await upload({ messageId: 9471, component: "CcmExec" });
      assert.equal(siteId.status, 400, JSON.stringify(siteId.json));
      assert.equal(siteId.json.error, "site_message_id");
      assert.match(siteId.json.message!, /^messages\.0\.messageId: must not be a site message ID/);

      // Its own message, dated 2099: stored as the client's, at the time it arrived.
      const before = new Date().toISOString();
      assert.equal((await upload({ messageId: 10002, component: "CcmExec" })).status, 200);
      const after = new Date().toISOString();
      const msgs = (await cli(["status", "messages", "--json", "--limit", "1000"])).json() as { messageId: number; component: string; source: string; clientId: string | null; server: string; time: string; claimedTime: string | null }[];
      assert.equal(msgs.filter((m) => m.messageId === 9471 || m.component === "SMS_CLOUD_SERVICES_MANAGER").length, 0, "nothing of the refused uploads was stored");
      const mine = msgs.filter((m) => m.source === "client");
      assert.equal(mine.length, 1);
      assert.equal(mine[0]!.clientId, id);
      assert.equal(mine[0]!.server, "PC-001");
      assert.equal(mine[0]!.claimedTime, "2099-01-01T00:00:00.000Z");
      assert.ok(mine[0]!.time >= before && mine[0]!.time <= after, `time ${mine[0]!.time} is when it arrived`);
      assert.ok(msgs.filter((m) => m.source === "site").every((m) => m.clientId === null));
      const table = (await cli(["status", "messages", "--source", "client"])).stdout;
      assert.match(table, new RegExp(`client PC-001 ${id}`));

      // Blocked: neither registering again nor renaming.
      assert.equal((await cli(["site", "clients", "block", id])).code, 0);
      for (const name of ["PC-001", "PC-009"]) {
        const r = await mallory(MP_PATHS.register, { name });
        assert.equal(r.status, 403, `${name}: ${JSON.stringify(r.json)}`);
        assert.equal(r.json.error, "client_blocked");
      }
      const clients = (await cli(["site", "clients", "--json"])).json() as { id: string; name: string; blocked: boolean }[];
      assert.deepEqual(clients.map((c) => [c.name, c.blocked]).sort(), [["PC-001", true], ["PC-RACE", false]], "PC-001 still named so and blocked; one PC-RACE");
    } finally {
      for (const a of agents) await a.close();
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
    }
  });
});
