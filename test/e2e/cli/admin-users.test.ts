/**
 * Security roles from the command line (SQLite and PostgreSQL): `admin-users` gives directory users
 * and groups roles, `site token create --role` and `set-role` give tokens theirs, each refusal names
 * the field and rule (exit 2); the directory's client secret is taken on standard input only and
 * shown nowhere; every change is in the audit log under the local user.
 */
import assert from "node:assert/strict";
import { userInfo } from "node:os";
import { beforeEach, it } from "node:test";
import { forEachDatabase } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";

const SECRET = "cli-client-secret-7a1b";

forEachDatabase("opencmg admin-users and token roles", (db) => {
  let cli: (args: string[], stdin?: string) => ReturnType<typeof runCli>;
  beforeEach(async () => {
    const { dataDir, databaseUrl } = await db.fresh();
    const base = ["--data", dataDir, ...(databaseUrl ? ["--database", databaseUrl] : [])];
    cli = (args, stdin) => runCli([...base, ...args], { stdin });
    assert.equal((await cli(["site", "init", "--site-code", "p01"])).code, 0);
  });

  it("adds, changes and removes roles of directory users and groups; refuses a bad role or kind naming the field", async () => {
    const added = await cli(["admin-users", "add", "group", "opencmg-analysts", "read-only-analyst", "--json"]);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.json().role, "read-only-analyst");
    assert.equal((await cli(["admin-users", "add", "user", "alice@contoso.com", "full-administrator"])).code, 0);
    const badRole = await cli(["admin-users", "add", "user", "bob@contoso.com", "superuser"]);
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /role: must be one of full-administrator, infrastructure-administrator, read-only-analyst/);
    const badKind = await cli(["admin-users", "add", "team", "x", "full-administrator"]);
    assert.equal(badKind.code, 2);
    assert.match(badKind.stderr, /kind: must be user or group/);
    assert.equal((await cli(["admin-users", "set-role", "group", "opencmg-analysts", "infrastructure-administrator"])).code, 0);
    assert.equal((await cli(["admin-users", "remove", "user", "alice@contoso.com"])).code, 0);
    const list = (await cli(["admin-users", "list", "--json"])).json() as { kind: string; value: string; role: string }[];
    assert.deepEqual(list.map((u) => [u.kind, u.value, u.role]), [["group", "opencmg-analysts", "infrastructure-administrator"]]);
    const audit = (await cli(["audit", "--action", "adminUsers", "--json"])).json() as { actor: string; action: string; object: string }[];
    assert.deepEqual(audit.map((e) => e.action), ["adminUsers.remove", "adminUsers.setRole", "adminUsers.add", "adminUsers.add"]);
    assert.ok(audit.every((e) => e.actor === userInfo().username));
    assert.equal(audit[1]!.object, "admin-user/group/opencmg-analysts");
  });

  it("gives tokens roles; admin.token stays a Full Administrator", async () => {
    const t = await cli(["site", "token", "create", "ops", "--role", "infrastructure-administrator", "--json"]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.json().role, "infrastructure-administrator");
    assert.equal((await cli(["site", "token", "set-role", "ops", "read-only-analyst"])).code, 0);
    const admin = await cli(["site", "token", "set-role", "admin", "read-only-analyst"]);
    assert.equal(admin.code, 2);
    assert.match(admin.stderr, /role: the admin token/);
    const list = (await cli(["site", "token", "list", "--json"])).json() as { name: string; role: string }[];
    assert.deepEqual(list.map((x) => [x.name, x.role]), [["admin", "full-administrator"], ["ops", "read-only-analyst"]]);
  });

  it("takes the directory's client secret on standard input only and never shows it", async () => {
    const onArgv = await cli(["settings", "set", "admin-oidc-client-secret", SECRET]);
    assert.equal(onArgv.code, 2);
    assert.match(onArgv.stderr, /value: admin-oidc-client-secret is a secret/);
    assert.ok(!onArgv.stderr.includes(SECRET));
    const set = await cli(["settings", "set", "admin-oidc-client-secret", "--value-stdin", "--json"], `${SECRET}\n`);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.json().value, "(set)");
    const all = await cli(["settings", "list", "--json"]);
    assert.ok(!all.stdout.includes(SECRET));
    const audit = await cli(["audit", "--json"]);
    assert.ok(!audit.stdout.includes(SECRET));
    const badIssuer = await cli(["settings", "set", "admin-oidc-issuer", "http://login.contoso.com"]);
    assert.equal(badIssuer.code, 2);
    assert.match(badIssuer.stderr, /admin-oidc-issuer: must be an https:\/\/ issuer URL/);
  });
});
