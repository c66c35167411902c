/**
 * The release archive as an administrator uses it (docs/operations.md, "Install from the release
 * archive" and "Upgrade"): `npm pack` of the built tree, installed with `npm install --omit=dev`
 * into a folder of its own (from the npm cache when it has the packages), run from there. The
 * upgrade procedure in operations.md is tested by upgrade.test.ts, from the previous release's
 * archive kept in test/fixtures/releases/.
 *
 * The archives are installed without their optional database drivers (`--omit=optional`, which
 * is also what a gateway host does): better-sqlite3 compiles from source on install where no
 * prebuilt binary can be downloaded, minutes on a busy machine. The "site host" gets the driver
 * the way operations.md says (`npm install -g better-sqlite3`, found next to the install): here a
 * link to the one this checkout already built, in a node_modules folder above the install.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { freePort, freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const root = tempDir("opencmg-release-");
const procs: ChildProcess[] = [];
after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

/**
 * npm without what an npm that started this test (`npm test`) passes down about its own project
 * and command; its registry, cache and proxy settings stay.
 */
const NPM_OWN = /^npm_(lifecycle_|package_|command$|execpath$|node_execpath$|config_(local_prefix|global_prefix|prefix|global|omit|include|only|production|dev|ignore_scripts|save|package_lock|workspaces?)$)/i;
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !NPM_OWN.test(k)));
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = npmEnv()): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of a built tree, without running its build again: the archive's file name. */
function pack(dir: string, dest: string): string {
  const out = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dest], dir);
  return join(dest, (JSON.parse(out) as { filename: string }[])[0]!.filename);
}

/** `npm install --omit=dev --omit=optional ARCHIVE` in `host` (a folder with its own package.json). */
function install(host: string, archive: string): string {
  mkdirSync(host, { recursive: true });
  if (!existsSync(join(host, "package.json"))) writeFileSync(join(host, "package.json"), '{ "private": true }\n');
  run("npm", ["install", "--omit=dev", "--omit=optional", "--prefer-offline", "--no-audit", "--no-fund", archive], host);
  return join(host, "node_modules", "opencmg");
}

/** The installed command, run by this test's Node (the one the linked driver was built for). */
const binOf = (host: string): string => join(host, "node_modules", "opencmg", "bin", "opencmg.mjs");

interface Cli {
  status: number | null;
  stdout: string;
  stderr: string;
}
/** The installed `opencmg`. */
function opencmg(host: string, args: string[]): Cli {
  const r = spawnSync(process.execPath, [binOf(host), ...args], { cwd: host, encoding: "utf8", timeout: 120_000, env: { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(host: string, args: string[]): string {
  const r = opencmg(host, args);
  assert.equal(r.status, 0, `opencmg ${args.join(" ")}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface UpFacts {
  siteUrl: string;
  consoleUrl: string;
  adminToken: string;
  cmgUrl: string;
  clientInstall: string[];
}
interface Up {
  facts: UpFacts;
  stop(): Promise<number | null>;
}
/** The installed `opencmg up`; ports given on the first start, the data folder's own afterwards. */
async function up(host: string, data: string, ports: string[]): Promise<Up> {
  rmSync(join(data, "up.json"), { force: true });
  const proc = spawn(process.execPath, [binOf(host), "--data", data, "up", ...ports], { cwd: host, stdio: ["ignore", "pipe", "pipe"] });
  procs.push(proc);
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await until("opencmg up to write up.json or exit", () => existsSync(join(data, "up.json")) || proc.exitCode !== null, 120_000);
  assert.ok(existsSync(join(data, "up.json")), `opencmg up exited: ${out}`);
  const facts = JSON.parse(readFileSync(join(data, "up.json"), "utf8")) as UpFacts;
  return {
    facts,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const exited = new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
      proc.kill("SIGINT");
      return exited;
    },
  };
}

async function messages(f: UpFacts, id: number): Promise<string[]> {
  const res = await fetch(`${f.siteUrl}/api/v1/status/messages?limit=1000`, { headers: { authorization: `Bearer ${f.adminToken}` } });
  assert.equal(res.status, 200);
  const items = ((await res.json()) as { items: { messageId: number; text: string }[] }).items;
  return items.filter((m) => m.messageId === id).map((m) => m.text);
}

/** One device cycle through the gateway: `count` messages queued, sent, none left. */
function cycle(host: string, clientDir: string, id: number, text: string): void {
  ok(host, ["client", "send-status", "--client-dir", clientDir, "--id", String(id), "--text", text, "--count", "2"]);
  ok(host, ["client", "run", "--once", "--client-dir", clientDir, "--json"]);
  const st = JSON.parse(ok(host, ["client", "status", "--client-dir", clientDir, "--json"])) as { connectionType: string; queuedUploads: number };
  assert.equal(st.connectionType, "internet");
  assert.equal(st.queuedUploads, 0);
}

let current = "";
before(() => {
  // This tree, as `npm test` built it (`npm pack` alone builds first, through `prepare`).
  assert.ok(existsSync(join(ROOT, "dist", "cli", "main.js")), "build first: npm run build");
  current = pack(ROOT, root);
  // The site host's driver, above every install (see the top of this file).
  mkdirSync(join(root, "node_modules"));
  symlinkSync(realpathSync(join(ROOT, "node_modules", "better-sqlite3")), join(root, "node_modules", "better-sqlite3"));
});

it("the archive holds the built program and installs with no dev packages, no build and no database driver", () => {
  const files = run("tar", ["-tzf", current], root).split("\n");
  for (const f of ["package/bin/opencmg.mjs", "package/dist/cli/main.js", "package/dist/console/index.html", "package/dist/externals.json", "package/docs/operations.md"]) {
    assert.ok(files.includes(f), `${f} in ${current}`);
  }
  assert.ok(!files.some((f) => f.startsWith("package/src/") || f.startsWith("package/test/")), "no sources or tests in the archive");

  // A gateway host: no database driver at all, and not above the install either.
  const gw = join(tempDir("opencmg-release-gw-"), "host");
  try {
    const pkg = install(gw, current);
    const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    assert.equal(ok(gw, ["--version"]).trim(), JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    // Every package dist/ imports is a runtime dependency installed here, or an optional driver.
    const externals = JSON.parse(readFileSync(join(pkg, "dist", "externals.json"), "utf8")) as string[];
    assert.ok(externals.length > 0);
    const req = createRequire(join(pkg, "dist", "cli", "main.js"));
    for (const name of externals) {
      assert.ok(manifest.devDependencies?.[name] === undefined, `${name}: a dev dependency imported at run time`);
      if (manifest.optionalDependencies?.[name]) {
        assert.throws(() => req.resolve(name), `${name} left out with --omit=optional`);
      } else {
        assert.ok(manifest.dependencies?.[name], `${name}: imported by dist/ but not a dependency`);
        assert.doesNotThrow(() => req.resolve(name), `${name} resolves from the installed dist/`);
      }
    }
    const installed = readdirSync(join(gw, "node_modules"));
    assert.ok(!installed.some((n) => Object.keys(manifest.devDependencies ?? {}).includes(n)), "no dev dependency installed");
    for (const driver of ["better-sqlite3", "pg"]) assert.ok(!installed.includes(driver), `${driver} is optional: a gateway host goes without it`);
    // The site database is what needs the driver, and says so.
    const site = opencmg(gw, ["--data", join(gw, "data"), "site", "clients"]);
    assert.equal(site.status, 1, site.stdout + site.stderr);
    assert.match(site.stderr, /the embedded \(SQLite\) site database needs better-sqlite3, which is not installed on this host: npm install better-sqlite3/);
    const pg = opencmg(gw, ["--data", join(gw, "data"), "--database", "postgres://opencmg@127.0.0.1:1/opencmg", "site", "clients"]);
    assert.equal(pg.status, 1, pg.stdout + pg.stderr);
    assert.match(pg.stderr, /a PostgreSQL site database needs pg, which is not installed on this host: npm install pg/);
  } finally {
    rmSync(join(gw, ".."), { recursive: true, force: true });
  }
});

