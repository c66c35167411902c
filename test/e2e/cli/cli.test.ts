/**
 * The CLI as a user drives it: exit codes, messages naming the field, `--json` shapes, nothing
 * half-written after a refusal, and no secret anywhere in the data folder. Runs on SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, it } from "node:test";
import pg from "pg";
import { forEachDatabase } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";

const PASSWORD = "Very-S3cret-Proxy-Passw0rd";

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

forEachDatabase("opencmg CLI", (db) => {
  let cli: (args: string[], stdin?: string) => ReturnType<typeof runCli>;
  let dataDir: string;
  let databaseUrl: string | undefined;
  beforeEach(async () => {
    ({ dataDir, databaseUrl } = await db.fresh());
    const base = ["--data", dataDir, ...(databaseUrl ? ["--database", databaseUrl] : [])];
    cli = (args, stdin) => runCli([...base, ...args], { stdin });
    const init = await cli(["site", "init", "--site-code", "p01", "--json"]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(init.json().site.code, "P01");
    assert.equal((statSync(join(dataDir, "site.key")).mode & 0o777).toString(8), "600");
    assert.equal((statSync(join(dataDir, "admin.token")).mode & 0o777).toString(8), "600");
  });

  it("settings: list, set with the value normalized, refuse a bad value naming the key, reset", async () => {
    const list = (await cli(["settings", "list", "--json"])).json();
    assert.equal(list.find((v: { key: string }) => v.key === "endpoint-check-interval").value, "1h");
    const set = await cli(["settings", "set", "traffic-report-interval", "90s", "--json"]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.json().value, "90s");
    const bad = await cli(["settings", "set", "traffic-report-interval", "soon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /traffic-report-interval: must be a duration/);
    assert.equal((await cli(["settings", "get", "traffic-report-interval", "--json"])).json().value, "90s", "a refused value changes nothing");
    const text = await cli(["settings", "list"]);
    assert.match(text.stdout, /traffic-report-interval\s+90s \*/);
    assert.equal((await cli(["settings", "reset", "traffic-report-interval", "--json"])).json().value, "5m");
  });

  it("proxy show --json has server, enabled, host, port (default 80) and the account's name", async () => {
    assert.equal((await cli(["server", "add", "scp01.contoso.com"])).code, 0);
    assert.equal((await cli(["account", "add", "CONTOSO\\svc-proxy", "--username", "svc-proxy", "--password-stdin"], PASSWORD + "\n")).code, 0);
    const set = await cli(["proxy", "set", "scp01.contoso.com", "--host", "proxy.contoso.com", "--account", "CONTOSO\\svc-proxy"]);
    assert.equal(set.code, 0, set.stderr);
    const show = await cli(["proxy", "show", "scp01.contoso.com", "--json"]);
    assert.deepEqual(show.json(), { server: "scp01.contoso.com", enabled: true, host: "proxy.contoso.com", port: 80, account: "CONTOSO\\svc-proxy" });
    const list = await cli(["account", "list", "--json"]);
    assert.equal(list.json()[0].name, "CONTOSO\\svc-proxy");
    assert.ok(!list.stdout.includes(PASSWORD));
  });

  it("bad input is refused with exit 2, a message naming the field, and nothing written", async () => {
    await cli(["server", "add", "srv01.contoso.com"]);
    await cli(["proxy", "set", "srv01.contoso.com", "--host", "good.contoso.com", "--port", "3128"]);
    const cases: [string[], RegExp][] = [
      [["proxy", "set", "srv01.contoso.com", "--host", "p.contoso.com", "--port", "0"], /^error: port: .*1 to 65535/],
      [["proxy", "set", "srv01.contoso.com", "--host", "p.contoso.com", "--port", "65536"], /^error: port: .*1 to 65535/],
      [["proxy", "set", "srv01.contoso.com", "--host", "p.contoso.com", "--port", "abc"], /^error: port: must be a whole number/],
      [["proxy", "set", "srv01.contoso.com", "--host", "proxy contoso.com"], /^error: host: must not contain spaces/],
      [["proxy", "set", "srv01.contoso.com", "--host", "http://proxy.contoso.com:8080"], /^error: host: must be a host name or FQDN, not a URL/],
      [["proxy", "set", "srv01.contoso.com", "--host", "p.contoso.com", "--account", "CONTOSO\\nobody"], /^error: account: must name an existing account/],
      [["role", "add", "srv01.contoso.com", "web-server"], /^error: role: must be one of/],
      [["server", "add", "SRV01.contoso.com"], /^error: fqdn: .* already exists/],
      [["server", "add", "not a host"], /^error: fqdn: must be a host name/],
      [["site", "init", "--site-code", "TOOLONG"], /^error: siteCode: must be exactly 3/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
    }
    // Several bad options at once: one line for each, the first as before.
    const all = await cli(["proxy", "set", "srv01.contoso.com", "--host", "http://p.contoso.com", "--port", "0", "--account", "CONTOSO\\nobody"]);
    assert.equal(all.code, 2, all.stderr);
    const lines = all.stderr.trim().split("\n");
    assert.equal(lines.length, 3, all.stderr);
    assert.match(lines[0]!, /^error: host: must be a host name or FQDN, not a URL/);
    assert.match(lines[1]!, /^error: port: must be from 1 to 65535$/);
    assert.match(lines[2]!, /^error: account: must name an existing account/);
    assert.deepEqual((await cli(["proxy", "show", "srv01.contoso.com", "--json"])).json(), { server: "srv01.contoso.com", enabled: true, host: "good.contoso.com", port: 3128, account: null });
    assert.equal((await cli(["server", "list", "--json"])).json().length, 1);
    assert.equal((await cli(["role", "list", "--json"])).json().length, 0);
  });

  it("SUP proxy options on a server with no proxy, and an account on a connected-cache DP's proxy, are refused", async () => {
    await cli(["server", "add", "sup01.contoso.com"]);
    let r = await cli(["role", "add", "sup01.contoso.com", "software-update-point", "--use-proxy-for-sync"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /useProxyForSync: needs a proxy server configured/);
    assert.equal((await cli(["role", "list", "--json"])).json().length, 0);
    assert.equal((await cli(["role", "add", "sup01.contoso.com", "software-update-point"])).code, 0);
    r = await cli(["role", "set", "sup01.contoso.com", "software-update-point", "--use-proxy-for-adr"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /useProxyForAdr/);

    await cli(["account", "add", "CONTOSO\\svc-proxy", "--username", "svc", "--password-stdin"], PASSWORD);
    await cli(["server", "add", "dp01.contoso.com"]);
    assert.equal((await cli(["role", "add", "dp01.contoso.com", "distribution-point", "--connected-cache"])).code, 0);
    r = await cli(["proxy", "set", "dp01.contoso.com", "--host", "proxy.contoso.com", "--account", "CONTOSO\\svc-proxy"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /account: .*connected cache/);
    assert.equal((await cli(["proxy", "show", "dp01.contoso.com", "--json"])).json().host, null);
  });

  it("role list --json gives ids; proxy effective explains the decision", async () => {
    await cli(["server", "add", "scp01.contoso.com"]);
    await cli(["role", "add", "scp01.contoso.com", "service-connection-point"]);
    await cli(["proxy", "set", "scp01.contoso.com", "--host", "proxy.contoso.com", "--port", "8080"]);
    const roles = (await cli(["role", "list", "--json"])).json();
    assert.equal(typeof roles[0].id, "number");
    const eff = await cli(["proxy", "effective", "scp01.contoso.com", "directory-user-discovery", "--json"]);
    assert.equal(eff.code, 0, eff.stderr);
    assert.equal(eff.json().use, "proxy");
    assert.equal(eff.json().proxyServer, "scp01.contoso.com");
  });

  it("the account's password appears nowhere in the data folder (database and logs)", async () => {
    await cli(["server", "add", "scp01.contoso.com"]);
    await cli(["account", "add", "CONTOSO\\svc-proxy", "--username", "svc", "--password-stdin"], PASSWORD);
    await cli(["proxy", "set", "scp01.contoso.com", "--host", "proxy.contoso.com", "--account", "CONTOSO\\svc-proxy"]);
    await cli(["account", "set-password", "CONTOSO\\svc-proxy", "--password-stdin"], PASSWORD + "-2");
    const files = filesUnder(dataDir);
    assert.ok(files.some((f) => f.endsWith(".log")), "logs were written");
    for (const f of files) assert.ok(!readFileSync(f).includes(PASSWORD), `${f} holds the password`);
    const grep = spawnSync("grep", ["-r", "-a", "-l", PASSWORD, dataDir]);
    assert.equal(grep.status, 1, `grep found it in ${grep.stdout}`);
    if (databaseUrl) {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      try {
        const dump = JSON.stringify((await c.query("SELECT * FROM accounts")).rows);
        assert.ok(dump.includes("svc") && !dump.includes(PASSWORD));
      } finally {
        await c.end();
      }
    }
  });
});

it("the binary runs from the checkout (npx opencmg) and exits 2 on a usage error", () => {
  const bin = OPENCMG_BIN;
  const v = execFileSync(process.execPath, [bin, "--version"]).toString().trim();
  assert.match(v, /^\d+\.\d+\.\d+$/);
  const r = spawnSync(process.execPath, [bin, "proxy", "set"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /required option '--host <host>' not specified/);
});
