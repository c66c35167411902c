// Runs every *.test.ts under src/ and test/e2e/ with Node's own test runner (Node 20's `--test`
// takes no globs, so the files are listed here). Extra arguments filter by path substring.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function find(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}
// --unit: the fast tests beside the code (src/); --e2e: multi-process, Squid, PostgreSQL and
// browser tests (test/e2e/). Neither: both.
const argv = process.argv.slice(2);
const unit = argv.includes("--unit");
const e2e = argv.includes("--e2e");
const filters = argv.filter((a) => a !== "--unit" && a !== "--e2e");
const roots = unit && !e2e ? ["src"] : e2e && !unit ? ["test"] : ["src", "test"];
const files = roots.flatMap(find)
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const args = ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files];
// Every temporary file of the run (data folders, PostgreSQL clusters, browser profiles) goes
// into one folder: removed after a green run, kept after a red one for its logs.
// It is open like /tmp (sticky, everyone may write) because PostgreSQL and Squid run as their
// own users inside it.
const runTmp = mkdtempSync(join(tmpdir(), "opencmg-tests-"));
chmodSync(runTmp, 0o1777);
const r = spawnSync(process.execPath, args, { stdio: "inherit", env: { ...process.env, TMPDIR: runTmp } });
if (r.status === 0) rmSync(runTmp, { recursive: true, force: true });
else console.error(`The tests' temporary files (data folders and logs) are kept in ${runTmp}`);
process.exit(r.status ?? 1);
