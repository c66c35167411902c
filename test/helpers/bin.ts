/** The package's `opencmg` command (bin/opencmg.mjs, running the built dist/: `npm test` builds first). */
import { spawn } from "node:child_process";
import { join } from "node:path";

export const OPENCMG_BIN = join(import.meta.dirname, "..", "..", "bin", "opencmg.mjs");

export interface BinRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `opencmg ARGS` in another process, without blocking this one (a site server or an instance this
 * test runs in-process keeps serving meanwhile). `OPENCMG_DATA` is cleared unless `env` sets it.
 * `input`: its standard input (a secret that never goes on the command line), else none.
 */
export function runBinAsync(args: string[], env: NodeJS.ProcessEnv = { ...process.env, OPENCMG_DATA: "" }, input?: string): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [OPENCMG_BIN, ...args], { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"], env });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `opencmg ARGS --json` in another process: its answer, or an error naming the command and what it said. */
export async function binJson<T>(args: string[]): Promise<T> {
  const r = await runBinAsync([...args, "--json"]);
  if (r.code !== 0) throw new Error(`opencmg ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
