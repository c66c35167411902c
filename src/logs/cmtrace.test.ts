import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
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
