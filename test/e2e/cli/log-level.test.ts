/**
 * `--log-level` of the long-running commands: refused with the field and the allowed levels when
 * unknown; applied to the CMTrace files and the structured copy on stdout when known.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";

describe("--log-level", () => {
  const commands: string[][] = [
    ["site", "serve"],
    ["gateway", "serve", "--config", "instance-0.json"],
    ["connection-point", "serve", "--server", "cp1.contoso.com"],
    ["mp", "serve", "--server", "mp1.contoso.com"],
    ["up"],
  ];
  for (const command of commands) {
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
    const p = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "site", "serve", "--listen", "127.0.0.1:0", ...level], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | string | null>((r) => p.once("exit", (c, s) => r(c ?? s)));
    await until("site serve to listen or exit", () => /serving the admin API/.test(stderr) || p.exitCode !== null);
    assert.match(stderr, /serving the admin API/);
    p.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
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
