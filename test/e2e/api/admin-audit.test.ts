/**
 * Who did what, on SQLite and PostgreSQL: named admin tokens (read-only, revoked) over real HTTP,
 * and the audit log of changes made through the API and through the CLI, with secrets redacted.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, it } from "node:test";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { OpenedSite } from "../../../src/site/site.ts";
import { apiClient } from "../../helpers/api.ts";
import { runCli } from "../../helpers/cli.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { openTestSite } from "../../helpers/site.ts";

forEachDatabase("admin tokens and the audit log", (db) => {
  const open: { site: OpenedSite; server: RunningSiteServer }[] = [];
  after(async () => {
    for (const o of open) {
      await o.server.close();
      await o.site.close();
    }
  });
  const start = async () => {
    const fresh = await db.fresh();
    const site = await openTestSite({ kind: db.kind, fresh: async () => fresh });
    const server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false });
    open.push({ site, server });
    const cli = (args: string[], stdin?: string) => runCli(["--data", fresh.dataDir, ...(fresh.databaseUrl ? ["--database", fresh.databaseUrl] : []), ...args], stdin === undefined ? {} : { stdin });
    return { site, server, call: apiClient(server.url, site.adminToken), cli };
  };

  it("site token create prints a token once, keeps only its hash; a read-only token reads (200) but any change is 403; a revoked one is 401", async () => {
    const { site, call, cli } = await start();
    const created = await cli(["--json", "site", "token", "create", "auditor", "--read-only"]);
    assert.equal(created.code, 0, created.stderr);
    const { token, name, readOnly } = created.json<{ token: string; name: string; readOnly: boolean }>();
    assert.equal(name, "auditor");
    assert.equal(readOnly, true);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    // Only the hash is stored: the token appears nowhere in the database.
    const rows = await site.database.db.selectFrom("admin_tokens").selectAll().execute();
    assert.ok(!JSON.stringify(rows).includes(token));
    assert.deepEqual(rows.map((r) => r.name).sort(), ["admin", "auditor"]);
    const list = await cli(["--json", "site", "token", "list"]);
    assert.ok(!list.stdout.includes(token));

    assert.equal((await call("GET", "/api/v1/servers", undefined, token)).status, 200);
    assert.deepEqual((await call("GET", "/api/v1/whoami", undefined, token)).body, { name: "auditor", role: "read-only-analyst", roleLabel: "Read-only Analyst", readOnly: true, permissions: ["read"], source: "token" });
    for (const [method, path, body] of [
      ["POST", "/api/v1/servers", { fqdn: "srv01.contoso.com" }],
      ["PUT", "/api/v1/servers/srv01.contoso.com/proxy", { host: "proxy.contoso.com" }],
      ["POST", "/api/v1/admin-tokens", { name: "escalate" }],
      ["DELETE", "/api/v1/admin-tokens/admin", undefined],
    ] as const) {
      const r = await call(method, path, body, token);
      assert.equal(r.status, 403, `${method} ${path}`);
      // A read-only token is a Read-only Analyst: the route's permission refuses it.
      assert.equal(r.body.error.code, "ROLE_FORBIDDEN");
      assert.equal(r.body.error.kind, "forbidden");
    }
    assert.deepEqual((await call("GET", "/api/v1/servers")).body, []);
    // The wrapped services refuse a read-only actor too, whatever door the call comes through.
    await assert.rejects(site.servicesAs({ name: "auditor", via: "api", readOnly: true }).servers.add({ fqdn: "srv02.contoso.com" }), { kind: "forbidden" });

    const revoked = await cli(["site", "token", "revoke", "auditor"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const r = await call("GET", "/api/v1/servers", undefined, token);
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, "ADMIN_TOKEN");
    // admin.token keeps working as "admin".
    assert.equal((await call("GET", "/api/v1/whoami")).body.name, "admin");
    assert.equal(readFileSync(site.paths.adminToken, "utf8").trim(), site.adminToken);
  });

  it("a token made over the API acts under its name; its changes are audited with before and after, secrets redacted", async () => {
    const { call } = await start();
    const made = await call("POST", "/api/v1/admin-tokens", { name: "ops-alice" });
    assert.equal(made.status, 201);
    const alice = made.body.token as string;
    const as = (m: string, p: string, b?: unknown) => call(m, p, b, alice);
    assert.equal((await as("POST", "/api/v1/servers", { fqdn: "scp01.contoso.com" })).status, 201);
    assert.equal((await as("POST", "/api/v1/accounts", { name: "svc-proxy", username: "svc", password: "Api-S3cret-1" })).status, 201);
    assert.equal((await as("PUT", "/api/v1/servers/scp01.contoso.com/proxy", { host: "proxy.contoso.com", port: 8080 })).status, 200);
    assert.equal((await as("PUT", "/api/v1/servers/scp01.contoso.com/proxy", { host: "proxy2.contoso.com", port: 3128, account: "svc-proxy" })).status, 200);
    assert.equal((await as("PUT", "/api/v1/accounts/svc-proxy/password", { password: "Api-S3cret-2" })).status, 200);

    const audit = await call("GET", "/api/v1/audit?actor=ops-alice");
    assert.equal(audit.status, 200);
    const raw = JSON.stringify(audit.body);
    for (const secret of ["Api-S3cret-1", "Api-S3cret-2", alice]) assert.ok(!raw.includes(secret), `the audit log holds ${secret}`);
    const entries = audit.body.items as { actor: string; via: string; action: string; object: string; before: any; after: any }[];
    assert.deepEqual(
      entries.map((e) => e.action),
      ["accounts.setPassword", "proxies.set", "proxies.set", "accounts.add", "servers.add"],
    );
    assert.ok(entries.every((e) => e.actor === "ops-alice" && e.via === "api"));
    const second = entries[1]!;
    assert.equal(second.object, "server/scp01.contoso.com/proxy");
    assert.deepEqual(second.before, { server: "scp01.contoso.com", enabled: true, host: "proxy.contoso.com", port: 8080, account: null });
    assert.deepEqual(second.after, { server: "scp01.contoso.com", enabled: true, host: "proxy2.contoso.com", port: 3128, account: "svc-proxy" });
    assert.equal(entries[4]!.before, null);
    // The token's creation is audited under "admin", without the token.
    const byAdmin = (await call("GET", "/api/v1/audit?object=admin-token/")).body.items;
    assert.equal(byAdmin[0].action, "adminTokens.create");
    assert.equal(byAdmin[0].actor, "admin");
    assert.equal(byAdmin[0].after.name, "ops-alice");
    // Paging: one at a time, newest first, until nextCursor is null.
    const seen: number[] = [];
    let cursor: number | null = null;
    do {
      const page: any = (await call("GET", `/api/v1/audit?actor=ops-alice&limit=2${cursor ? `&cursor=${cursor}` : ""}`)).body;
      seen.push(...page.items.map((e: { id: number }) => e.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    assert.equal(seen.length, 5);
    assert.deepEqual(seen, [...seen].sort((a, b) => b - a));
  });

  it("a CLI change is audited as the local user, via cli; opencmg audit shows it, --since filters, secrets redacted", async () => {
    const { call, cli } = await start();
    assert.equal((await cli(["server", "add", "sup01.contoso.com"])).code, 0);
    const acc = await cli(["account", "add", "CONTOSO\\svc", "--username", "svc", "--password-stdin"], "Cli-S3cret");
    assert.equal(acc.code, 0, acc.stderr);
    const set = await cli(["proxy", "set", "sup01.contoso.com", "--host", "proxy.contoso.com", "--port", "8080", "--account", "CONTOSO\\svc"]);
    assert.equal(set.code, 0, set.stderr);

    const out = await cli(["--json", "audit", "--since", "1h"]);
    assert.equal(out.code, 0, out.stderr);
    assert.ok(!out.stdout.includes("Cli-S3cret"));
    const entries = out.json<{ actor: string; via: string; action: string; object: string; before: unknown; after: any }[]>();
    const proxy = entries.find((e) => e.action === "proxies.set")!;
    assert.equal(proxy.via, "cli");
    assert.ok(proxy.actor.length > 0 && proxy.actor !== "admin");
    assert.equal(proxy.object, "server/sup01.contoso.com/proxy");
    assert.equal(proxy.before, null);
    assert.equal(proxy.after.account, "CONTOSO\\svc");
    assert.ok(entries.some((e) => e.action === "accounts.add" && e.object === "account/CONTOSO\\svc"));
    // The API sees the same log; a future --since finds nothing.
    assert.ok((await call("GET", "/api/v1/audit")).body.items.some((e: { via: string }) => e.via === "cli"));
    assert.deepEqual((await cli(["--json", "audit", "--since", "2999-01-01T00:00:00Z"])).json(), []);
    const bad = await cli(["audit", "--since", "yesterday"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /since/);
  });
});
