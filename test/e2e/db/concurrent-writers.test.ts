/**
 * Issue 16: sixteen `opencmg` processes write to one site at the same moment while `opencmg site
 * serve` runs on it. Every write either succeeds (exit 0) or is refused as a duplicate (exit 2,
 * stderr naming the field); none fails on a lock, a busy database or a serialization failure, and
 * afterwards the database holds exactly what succeeded. On SQLite and on PostgreSQL.
 *
 * The children start behind a barrier (each says "ready" on fd 3 and waits for "go"), not after a
 * sleep, so they all open the site and write together however loaded the machine is.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, it } from "node:test";
import { initSite, openSite } from "../../../src/site/site.ts";
import { forEachDatabase } from "../../helpers/databases.ts";

const BIN = fileURLToPath(new URL("../../../bin/opencmg.mjs", import.meta.url));
const BARRIER = fileURLToPath(new URL("../../helpers/start-barrier.mjs", import.meta.url));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

interface Run {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnCli(base: string[], args: string[], barrier: boolean): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [...(barrier ? ["--import", BARRIER] : []), BIN, ...base, ...args], {
    stdio: ["ignore", "pipe", "pipe", ...(barrier ? (["pipe"] as const) : [])],
    env: { ...process.env, OPENCMG_DATA: "", OPENCMG_DATABASE: "" },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) =>
    child.once("close", (code) => {
      children.delete(child);
      resolve({ args, code, stdout, stderr });
    }),
  );
  return { child, done };
}

const LOCK_ERRORS = /locked|busy|DATABASE_BUSY|serializ|deadlock|SQLITE_|could not obtain lock/i;

forEachDatabase("concurrent writers", (db) => {
  it("16 processes writing at once while site serve runs: each succeeds or is refused as a duplicate, none fails on a lock", async () => {
    const { dataDir, databaseUrl } = await db.fresh();
    const base = ["--data", dataDir, ...(databaseUrl ? ["--database", databaseUrl] : [])];
    // Set up in-process (quicker than a process per step), closed before the writers start.
    const setup = await openSite({ dataDir, databaseUrl });
    await initSite(setup, { code: "P01", name: "Primary site" });
    for (const n of [1, 2, 3, 4, 5]) await setup.services.servers.add({ fqdn: `base${n}.contoso.com` });
    await setup.services.roles.add("base3.contoso.com", "management-point");
    await setup.close();

    // The long-running server on the same data folder and database.
    const serve = spawnCli(base, ["site", "serve", "--listen", "127.0.0.1:0"], false);
    let serveErr = "";
    await new Promise<void>((resolve, reject) => {
      serve.child.stderr!.on("data", (d: string) => {
        serveErr += d;
        if (serveErr.includes("serving the admin API")) resolve();
      });
      serve.child.once("close", (code) => reject(new Error(`site serve exited (${code}): ${serveErr}`)));
    });

    const writes: string[][] = [
      ...[1, 2, 3, 4, 5, 6].map((n) => ["server", "add", `new${n}.contoso.com`]),
      ...[1, 2, 3].map(() => ["server", "add", "dup.contoso.com"]),
      ["role", "add", "base1.contoso.com", "management-point"],
      ["role", "add", "base2.contoso.com", "distribution-point", "--connected-cache"],
      ["role", "set", "base3.contoso.com", "management-point", "--allow-cmg-traffic"],
      ["proxy", "set", "base1.contoso.com", "--host", "proxy1.contoso.com", "--port", "3128"],
      ["proxy", "set", "base2.contoso.com", "--host", "proxy2.contoso.com", "--port", "8080"],
      ["proxy", "set", "base4.contoso.com", "--host", "proxy4.contoso.com"],
      ["server", "remove", "base5.contoso.com"],
    ];
    assert.equal(writes.length, 16);
    const runs = writes.map((w) => spawnCli(base, w, true));
    // Barrier: every child has loaded Node and waits; then all start at once.
    await Promise.all(
      runs.map(
        ({ child }) =>
          new Promise<void>((resolve, reject) => {
            const fd3 = child.stdio[3] as NodeJS.ReadableStream;
            fd3.once("data", () => resolve());
            child.once("close", (code) => reject(new Error(`a writer exited (${code}) before the barrier`)));
          }),
      ),
    );
    for (const { child } of runs) (child.stdio[3] as NodeJS.WritableStream).write("go\n");
    const results = await Promise.all(runs.map((r) => r.done));

    for (const r of results) {
      const what = `${r.args.join(" ")} -> exit ${r.code}: ${r.stderr}`;
      assert.doesNotMatch(r.stderr, LOCK_ERRORS, what);
      if (r.args.join(" ") === "server add dup.contoso.com" && r.code !== 0) {
        assert.equal(r.code, 2, what);
        assert.match(r.stderr, /^error: fqdn: site system server dup\.contoso\.com already exists\n$/, what);
      } else assert.equal(r.code, 0, what);
    }
    assert.equal(results.filter((r) => r.args.join(" ") === "server add dup.contoso.com" && r.code === 0).length, 1, "exactly one of the duplicate adds succeeds");

    // The long-running server is still there and nothing it did failed.
    assert.equal(serve.child.exitCode, null, serveErr);
    serve.child.kill("SIGTERM");
    const served = await serve.done;
    assert.doesNotMatch(served.stderr + served.stdout, LOCK_ERRORS);

    // The database holds exactly what succeeded.
    const site = await openSite({ dataDir, databaseUrl });
    try {
      const servers = await site.services.servers.list();
      assert.deepEqual(
        servers.map((s) => s.fqdn),
        ["base1", "base2", "base3", "base4", "dup", "new1", "new2", "new3", "new4", "new5", "new6"].map((n) => `${n}.contoso.com`),
      );
      const roles = await site.services.roles.list();
      assert.deepEqual(
        roles.map((r) => [r.serverFqdn, r.kind, r.settings]),
        [
          ["base1.contoso.com", "management-point", { allowCmgTraffic: false }],
          ["base2.contoso.com", "distribution-point", { connectedCache: true }],
          ["base3.contoso.com", "management-point", { allowCmgTraffic: true }],
        ],
      );
      const proxies: Record<string, unknown> = {};
      for (const n of [1, 2, 3, 4]) proxies[`base${n}`] = await site.services.proxies.show(`base${n}.contoso.com`);
      assert.deepEqual(proxies, {
        base1: { server: "base1.contoso.com", enabled: true, host: "proxy1.contoso.com", port: 3128, account: null },
        base2: { server: "base2.contoso.com", enabled: true, host: "proxy2.contoso.com", port: 8080, account: null },
        base3: null,
        base4: { server: "base4.contoso.com", enabled: true, host: "proxy4.contoso.com", port: 80, account: null },
      });
    } finally {
      await site.close();
    }
  });
});
