/**
 * The long-running commands (`... serve`, `up`) as the option tests run them: the list of them
 * with the arguments each needs to reach its own option checks, and one `site serve` run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { OPENCMG_BIN } from "./bin.ts";
import { until } from "./until.ts";

/** Every command that takes `--log-level` and `--log-size-mb`, with what it needs besides. */
export const SERVE_COMMANDS: readonly string[][] = [
  ["site", "serve"],
  ["gateway", "serve", "--config", "instance-0.json"],
  ["connection-point", "serve", "--server", "cp1.contoso.com"],
  ["mp", "serve", "--server", "mp1.contoso.com"],
  ["sup", "serve", "--server", "sup1.contoso.com"],
  ["up"],
];

/** Runs `site serve` on `data` with `args` until it listens, stops it (SIGTERM, exit 0); its stdout. */
export async function serveSiteOnce(data: string, args: string[]): Promise<{ stdout: string }> {
  const p = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "site", "serve", "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string | null>((r) => p.once("exit", (c, s) => r(c ?? s)));
  await until("site serve to listen or exit", () => /serving the admin API/.test(stderr) || p.exitCode !== null);
  assert.match(stderr, /serving the admin API/);
  p.kill("SIGTERM");
  assert.equal(await exited, 0, stderr);
  return { stdout };
}
