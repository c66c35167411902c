import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const FAULTS = join(import.meta.dirname, "faults.ts");
const CMTRACE = join(import.meta.dirname, "..", "logs", "cmtrace.ts");
const FILES = join(import.meta.dirname, "..", "logs", "files.ts");

/** Runs a process that registers logFatalFaults and then fails with `fault`; returns its exit and its log. */
function failWith(fault: string): { status: number | null; stderr: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-faults-"));
  try {
    const script = `
      import { logFatalFaults } from ${JSON.stringify(FAULTS)};
      import { LogSet } from ${JSON.stringify(CMTRACE)};
      import { LOG_FILES } from ${JSON.stringify(FILES)};
      const log = new LogSet({ dir: ${JSON.stringify(dir)} }).component(LOG_FILES.cmgService);
      logFatalFaults(log, "Gateway worker 3 (pid " + process.pid + ")");
      setImmediate(() => { ${fault} });
    `;
    const r = spawnSync(process.execPath, [...process.execArgv, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    let log = "";
    try {
      log = readFileSync(join(dir, "CMGService.log"), "utf8");
    } catch {
      /* no line written */
    }
    return { status: r.status, stderr: r.stderr, log };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("logFatalFaults", () => {
  it("writes an uncaught exception with its stack to the process's log, and the process still exits 1", () => {
    const r = failWith(`function parseHello() { throw new TypeError("boom at the hello"); } parseHello();`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.log, /Gateway worker 3 \(pid \d+\) is exiting \(code 1\) on an exception no code caught: TypeError: boom at the hello/);
    assert.match(r.log, /at parseHello/, "the stack is in the line");
    assert.match(r.log, /type="3"/, "an error line");
    assert.match(r.stderr, /boom at the hello/, "Node's own report on standard error is kept");
  });

  it("writes an unhandled promise rejection the same way", () => {
    const r = failWith(`void Promise.reject(new Error("nobody awaited this"));`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.log, /is exiting \(code 1\) on a promise rejection no code handled: Error: nobody awaited this/);
  });
});
