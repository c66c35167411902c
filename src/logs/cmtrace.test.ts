import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { tempDir } from "../../test/helpers/databases.ts";
import { formatLine, isLogLevel, LOG_LEVELS, LogSet, parseLines } from "./cmtrace.ts";
import { LOG_FILES } from "./files.ts";

it("writes the CMTrace line format with the platform's time-zone bias", () => {
  const at = new Date(2026, 10, 22, 9, 5, 7, 42);
  const line = formatLine("Failed to download the update from internet. Error = 12007.", "SMS_RULE_ENGINE", "error", at, 1234);
  const bias = at.getTimezoneOffset();
  const zone = `${bias < 0 ? "-" : "+"}${String(Math.abs(bias)).padStart(3, "0")}`;
  assert.equal(
    line,
    `<![LOG[Failed to download the update from internet. Error = 12007.]LOG]!><time="09:05:07.042${zone}" date="11-22-2026" component="SMS_RULE_ENGINE" context="" type="3" thread="1234" file="">\r\n`,
  );
});

it("gives every line its own time and date, within one second and across second, day and year boundaries", () => {
  // The time fields of a second are formatted once and reused: each line must still carry its own.
  const time = (at: Date): string => parseLines(formatLine("x", "C", "info", at))[0]!.time.slice(0, 12);
  const date = (at: Date): string => parseLines(formatLine("x", "C", "info", at))[0]!.date;
  assert.equal(time(new Date(2026, 11, 31, 23, 59, 58, 999)), "23:59:58.999");
  assert.equal(time(new Date(2026, 11, 31, 23, 59, 59, 0)), "23:59:59.000");
  assert.equal(time(new Date(2026, 11, 31, 23, 59, 59, 998)), "23:59:59.998");
  assert.equal(date(new Date(2026, 11, 31, 23, 59, 59, 999)), "12-31-2026");
  assert.equal(time(new Date(2027, 0, 1, 0, 0, 0, 0)), "00:00:00.000");
  assert.equal(date(new Date(2027, 0, 1, 0, 0, 0, 1)), "01-01-2027");
  // Back in time (a clock set back, or a test clock): never the later second's fields.
  assert.equal(time(new Date(2026, 11, 31, 23, 59, 59, 500)), "23:59:59.500");
  assert.equal(date(new Date(2026, 11, 31, 23, 59, 59, 500)), "12-31-2026");
});

it("escapes the end marker inside a message so a viewer reads one entry", () => {
  const line = formatLine("evil ]LOG]!><time=\"x\" text", "C", "info", new Date());
  assert.equal(line.split("]LOG]!>").length, 2);
  assert.equal(parseLines(line)[0]!.text, 'evil ]LOG]!><time="x" text');
});

it("rotates by size, keeping the previous file as NAME.lo_", () => {
  const dir = tempDir();
  const logs = new LogSet({ dir, maxBytes: 2000 });
  const log = logs.component(LOG_FILES.ruleengine);
  for (let i = 0; i < 30; i++) log.info(`line ${i} ${"x".repeat(100)}`);
  logs.close();
  const current = parseLines(readFileSync(join(dir, "ruleengine.log"), "utf8"));
  const previous = parseLines(readFileSync(join(dir, "ruleengine.lo_"), "utf8"));
  assert.ok(existsSync(join(dir, "ruleengine.lo_")));
  assert.ok(readFileSync(join(dir, "ruleengine.log")).length <= 2000);
  assert.equal(current.at(-1)!.text.startsWith("line 29 "), true);
  assert.ok(previous.length > 0 && current.length > 0);
  assert.equal(current[0]!.component, "SMS_RULE_ENGINE");
  assert.equal(previous.at(-1)!.text.split(" ")[1], String(Number(current[0]!.text.split(" ")[1]) - 1), "no line lost across the rotation");
});

it("writes only lines at or above its level, to the files and the structured copy alike", () => {
  const dir = tempDir();
  const copied: string[] = [];
  // A pino-shaped sink: the structured copy gets the same lines as the file.
  const sink = { info: (_o: unknown, t: string) => copied.push(`info ${t}`), warn: (_o: unknown, t: string) => copied.push(`warn ${t}`), error: (_o: unknown, t: string) => copied.push(`error ${t}`) };
  const logs = new LogSet({ dir, level: "warning", pino: sink as unknown as NonNullable<ConstructorParameters<typeof LogSet>[0]["pino"]> });
  assert.equal(logs.level, "warning");
  const log = logs.component(LOG_FILES.cmgService);
  log.info("tunnel 1 is ready");
  log.warn("tunnel 2 closed");
  log.error("no tunnel left");
  logs.close();
  const lines = parseLines(readFileSync(join(dir, "CMGService.log"), "utf8"));
  assert.deepEqual(lines.map((l) => [l.type, l.text]), [[2, "tunnel 2 closed"], [3, "no tunnel left"]]);
  assert.deepEqual(copied, ["warn tunnel 2 closed", "error no tunnel left"]);

  // A per-request log: its warnings and errors are copied, not its line per request served.
  const http = new LogSet({ dir, pino: sink as unknown as NonNullable<ConstructorParameters<typeof LogSet>[0]["pino"]> });
  copied.length = 0;
  http.component(LOG_FILES.cmgHttpHandler).info("GET /x 200");
  http.component(LOG_FILES.cmgHttpHandler).warn("403 client_cert_revoked");
  http.close();
  assert.deepEqual(copied, ["warn 403 client_cert_revoked"]);
  assert.equal(parseLines(readFileSync(join(dir, "CMGHttpHandler.log"), "utf8")).length, 2, "both in the file");

  const errorsOnly = new LogSet({ dir, level: "error" });
  errorsOnly.component(LOG_FILES.statmgr).warn("a warning");
  errorsOnly.close();
  assert.equal(existsSync(join(dir, "statmgr.log")), false, "no line, no file");

  const all = new LogSet({ dir });
  assert.equal(all.level, "info");
  all.component(LOG_FILES.statmgr).info("an informational line");
  all.close();
  assert.equal(parseLines(readFileSync(join(dir, "statmgr.log"), "utf8")).length, 1);
});

it("knows CMTrace's severities as the levels, and nothing else", () => {
  assert.deepEqual(LOG_LEVELS, ["info", "warning", "error"]);
  for (const v of ["info", "warning", "error"]) assert.ok(isLogLevel(v), v);
  for (const v of ["debug", "warn", "INFO", "", "verbose"]) assert.ok(!isLogLevel(v), v);
});

it("several writers of one file (a gateway's worker processes) rotate it once, at its real size, and lose no line", () => {
  const dir = tempDir();
  // Two log sets open the same file apart, as two processes do (each its own descriptor and count).
  const a = new LogSet({ dir, maxBytes: 4000 });
  const b = new LogSet({ dir, maxBytes: 4000 });
  const la = a.component(LOG_FILES.cmgService);
  const lb = b.component(LOG_FILES.cmgService);
  for (let i = 0; i < 30; i++) (i % 2 === 0 ? la : lb).info(`line ${i} ${"x".repeat(100)}`);
  a.close();
  b.close();
  const current = readFileSync(join(dir, "CMGService.log"), "utf8");
  const previous = readFileSync(join(dir, "CMGService.lo_"), "utf8");
  assert.ok(current.length <= 4000 && previous.length <= 4000, `${current.length} and ${previous.length} bytes`);
  const numbers = [...parseLines(previous), ...parseLines(current)].map((l) => Number(l.text.split(" ")[1]));
  assert.deepEqual(numbers, Array.from({ length: 30 }, (_, i) => i), "every line once, in order");
});

it("writes a per-request log's lines in one append per turn of the event loop, an error line at once and after them", async () => {
  const dir = tempDir();
  const logs = new LogSet({ dir });
  const http = logs.component(LOG_FILES.cmgHttpHandler);
  const file = join(dir, "CMGHttpHandler.log");
  http.info("GET /a 200");
  const created = statSync(file).size;
  for (let i = 0; i < 50; i++) http.info(`GET /b${i} 200`);
  http.warn("403 client_cert_revoked");
  assert.equal(statSync(file).size, created, "nothing appended during the turn: a request pays no system call for its line");
  await nextTurn();
  let lines = parseLines(readFileSync(file, "utf8"));
  assert.equal(lines.length, 52, "the turn's lines, in one append at its end");
  assert.deepEqual([lines[0]!.text, lines[51]!.type], ["GET /a 200", 2]);

  http.info("GET /c 200");
  http.error("502 tunnel_failed");
  lines = parseLines(readFileSync(file, "utf8"));
  assert.deepEqual(lines.slice(-2).map((l) => l.text), ["GET /c 200", "502 tunnel_failed"], "an error line is on disk when the call returns, after the lines before it");

  // Other logs are unchanged: every line on disk when the call returns.
  logs.component(LOG_FILES.cmgService).info("tunnel 1 is ready");
  assert.equal(parseLines(readFileSync(join(dir, "CMGService.log"), "utf8")).length, 1);
  http.info("GET /d 200");
  logs.close();
  assert.equal(parseLines(readFileSync(file, "utf8")).at(-1)!.text, "GET /d 200", "close writes what waits");
});

it("loses no per-request line when the process exits or dies in the same turn", () => {
  const CMTRACE = join(import.meta.dirname, "cmtrace.ts");
  const FILES = join(import.meta.dirname, "files.ts");
  for (const end of ["process.exit(0)", "throw new Error('boom')"]) {
    const dir = tempDir();
    const script = `
      import { LogSet } from ${JSON.stringify(CMTRACE)};
      import { LOG_FILES } from ${JSON.stringify(FILES)};
      const http = new LogSet({ dir: ${JSON.stringify(dir)} }).component(LOG_FILES.cmgHttpHandler);
      for (let i = 0; i < 3; i++) http.info("GET /x" + i + " 200");
      ${end};
    `;
    const r = spawnSync(process.execPath, [...process.execArgv, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.notEqual(r.status, null, r.stderr);
    const lines = parseLines(readFileSync(join(dir, "CMGHttpHandler.log"), "utf8"));
    assert.deepEqual(lines.map((l) => l.text), ["GET /x0 200", "GET /x1 200", "GET /x2 200"], `${end}: ${r.stderr}`);
  }
});

it("several processes rotating one busy file at once: none fails, every line stays whole, the lock is released", async () => {
  const dir = tempDir();
  const go = join(dir, "go");
  const CMTRACE = join(import.meta.dirname, "cmtrace.ts");
  const FILES = join(import.meta.dirname, "files.ts");
  // Six writers, a rotation every ~40 lines, all starting together: rotations overlap, as a
  // gateway's workers' do under load.
  const script = (id: number): string => `
    import { existsSync } from "node:fs";
    import { LogSet } from ${JSON.stringify(CMTRACE)};
    import { LOG_FILES } from ${JSON.stringify(FILES)};
    const logs = new LogSet({ dir: ${JSON.stringify(dir)}, maxBytes: 8000 });
    const log = logs.component(LOG_FILES.cmgService);
    process.stdout.write("ready\\n");
    const start = () => {
      if (!existsSync(${JSON.stringify(go)})) return setTimeout(start, 2);
      for (let i = 0; i < 5000; i++) log.info("writer ${id} line " + i + " " + "x".repeat(40));
      logs.close();
    };
    start();
  `;
  let ready = 0;
  const runs = Promise.all(
    [0, 1, 2, 3, 4, 5].map(
      (id) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [...process.execArgv, "--input-type=module", "-e", script(id)], { stdio: ["ignore", "pipe", "pipe"] });
          let stderr = "";
          child.stdout.once("data", () => {
            if (++ready === 6) writeFileSync(go, "");
          });
          child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
          child.on("close", (code) => resolve({ code, stderr }));
        }),
    ),
  );
  for (const r of await runs) assert.deepEqual(r, { code: 0, stderr: "" });
  for (const name of ["CMGService.log", "CMGService.lo_"]) {
    const text = readFileSync(join(dir, name), "utf8");
    const entries = text.split("\r\n").filter(Boolean);
    assert.equal(parseLines(text).length, entries.length, `${name}: every entry a whole line`);
    assert.ok(entries.every((e) => /^<!\[LOG\[writer \d line \d+ x{40}\]LOG\]!>/.test(e)), `${name}: no line mixed with another`);
  }
  assert.ok(statSync(join(dir, "CMGService.log")).size <= 8000);
  assert.equal(existsSync(join(dir, "CMGService.lock")), false, "the rotation lock is released");
});

it("a log that cannot be written drops its lines and says so on standard error; the process goes on", () => {
  const dir = tempDir();
  // Every write to /dev/full fails with ENOSPC: a full disk.
  symlinkSync("/dev/full", join(dir, "CMGService.log"));
  const modeBefore = statSync("/dev/full").mode;
  const CMTRACE = join(import.meta.dirname, "cmtrace.ts");
  const FILES = join(import.meta.dirname, "files.ts");
  const script = `
    import { LogSet } from ${JSON.stringify(CMTRACE)};
    import { LOG_FILES } from ${JSON.stringify(FILES)};
    const log = new LogSet({ dir: ${JSON.stringify(dir)} }).component(LOG_FILES.cmgService);
    for (let i = 0; i < 5; i++) log.error("tunnel " + i + " closed");
    process.stdout.write("still running");
  `;
  let r: SpawnSyncReturns<string>;
  try {
    r = spawnSync(process.execPath, [...process.execArgv, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
  } finally {
    // Should the check below fail, the machine keeps its /dev/full.
    if (statSync("/dev/full").mode !== modeBefore) chmodSync("/dev/full", modeBefore & 0o7777);
  }
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "still running");
  const reports = r.stderr.split("\n").filter((l) => l.includes("cannot write"));
  assert.equal(reports.length, 1, `one report, not one per line: ${r.stderr}`);
  assert.match(reports[0]!, /CMGService\.log \(ENOSPC: .*\); 1 line\(s\) lost so far\. Check the disk/);
  assert.equal(statSync("/dev/full").mode, modeBefore, "a device behind a link is not chmodded");
});
