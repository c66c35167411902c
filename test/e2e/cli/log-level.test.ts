/**
 * `--log-level` of the long-running commands: refused with the field and the allowed levels when
 * unknown; applied to the CMTrace files and the structured copy on stdout when known.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";
import { SERVE_COMMANDS, serveSiteOnce } from "../../helpers/serve-commands.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";

describe("--log-level", () => {
  for (const command of SERVE_COMMANDS) {
    it(`${command.slice(0, 2).join(" ")}: refuses an unknown level, naming the field and the levels, and writes nothing`, async () => {
      const data = join(tempDir("opencmg-loglevel-"), "data");
      for (const bad of ["debug", "WARNING", "warn"]) {
        const r = await runCli(["--data", data, ...command, "--log-level", bad]);
        assert.equal(r.code, 2, r.stderr);
        assert.ok(r.stderr.includes(`logLevel: must be one of info, warning, error (got "${bad}")`), r.stderr);
      }
      assert.equal(existsSync(data), false);
    });
  }

  /** Runs `site serve` at `level` until it listens, stops it; its sitecomp.log lines and stdout. */
  async function serveOnce(data: string, level: string[]): Promise<{ lines: string[]; stdout: string }> {
    const { stdout } = await serveSiteOnce(data, level);
    const file = join(data, "logs", "sitecomp.log");
    return { lines: existsSync(file) ? parseLines(readFileSync(file, "utf8")).map((l) => l.text) : [], stdout };
  }

  it("site serve: warning leaves out the informational lines, the default writes them", async () => {
    const data = join(tempDir("opencmg-loglevel-"), "data");
    const init = await runCli(["--data", data, "site", "init"]);
    assert.equal(init.code, 0, init.stderr);

    const quiet = await serveOnce(data, ["--log-level", "warning"]);
    assert.deepEqual(quiet.lines, [], "no informational line in sitecomp.log");
    assert.doesNotMatch(quiet.stdout, /"level":30/, "no informational line on stdout");

    const all = await serveOnce(data, []);
    assert.ok(all.lines.some((l) => /^Admin API and console listening on /.test(l)), all.lines.join("\n"));
    assert.match(all.stdout, /"level":30/);
  });
});
