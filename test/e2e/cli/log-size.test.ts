/**
 * `--log-size-mb` of the long-running commands: refused with the field and the rule when it is not
 * a number of megabytes from 1 to 1024; applied as the rotation size of the process's CMTrace files
 * when it is.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";
import { SERVE_COMMANDS, serveSiteOnce } from "../../helpers/serve-commands.ts";
import { formatLine, parseLines } from "../../../src/logs/cmtrace.ts";

describe("--log-size-mb", () => {
  for (const command of SERVE_COMMANDS) {
    it(`${command.slice(0, 2).join(" ")}: refuses a size that is not 1 to 1024 MB, naming the field and the rule, and writes nothing`, async () => {
      const data = join(tempDir("opencmg-logsize-"), "data");
      for (const bad of ["0", "2000", "abc", "-1"]) {
        const r = await runCli(["--data", data, ...command, "--log-size-mb", bad]);
        assert.equal(r.code, 2, r.stderr);
        assert.ok(r.stderr.includes(`logSizeMb: must be a number of megabytes from 1 to 1024 (got "${bad}")`), r.stderr);
      }
      assert.equal(existsSync(data), false);
    });
  }

  /**
   * One CMTrace line of exactly `bytes` bytes: a file holding it is 64 bytes short of 1 MB, so the
   * process's first line (longer than that) crosses 1 MB but not the default 2.5 MB. LogFile counts
   * the existing file's size when it opens it, so a file left by an earlier run rotates the same way.
   */
  function fillerLine(bytes: number): string {
    const overhead = formatLine("", "filler", "info", new Date(0)).length;
    const line = formatLine("x".repeat(bytes - overhead), "filler", "info", new Date(0));
    assert.equal(Buffer.byteLength(line), bytes);
    return line;
  }

  it("site serve: a file past the size given rotates to NAME.lo_ on the next line; under the default 2.5 MB it does not", async () => {
    const data = join(tempDir("opencmg-logsize-"), "data");
    const init = await runCli(["--data", data, "site", "init"]);
    assert.equal(init.code, 0, init.stderr);
    const log = join(data, "logs", "sitecomp.log");
    const previous = join(data, "logs", "sitecomp.lo_");
    const filler = fillerLine(1024 * 1024 - 64);

    writeFileSync(log, filler, { mode: 0o600 });
    await serveSiteOnce(data, []);
    assert.equal(existsSync(previous), false, "not rotated at the default size");
    const kept = readFileSync(log, "utf8");
    assert.ok(kept.startsWith(filler), "the filler is still at the start of sitecomp.log");
    assert.ok(parseLines(kept).some((l) => /^Admin API and console listening on /.test(l.text)), "the new lines follow it");

    writeFileSync(log, filler, { mode: 0o600 });
    await serveSiteOnce(data, ["--log-size-mb", "1"]);
    assert.equal(readFileSync(previous, "utf8"), filler, "the full file became sitecomp.lo_");
    const fresh = parseLines(readFileSync(log, "utf8"));
    assert.ok(!fresh.some((l) => l.component === "filler"), "the new sitecomp.log starts empty");
    assert.ok(fresh.some((l) => /^Admin API and console listening on /.test(l.text)), fresh.map((l) => l.text).join("\n"));
  });
});
