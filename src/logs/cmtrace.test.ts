import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { tempDir } from "../../test/helpers/databases.ts";
import { formatLine, LogSet, parseLines } from "./cmtrace.ts";
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
