import { PassThrough, Readable } from "node:stream";
import { main } from "../../src/cli/main.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = any>(): T;
}

/** Runs `opencmg ARGS` in this process with captured streams (same code path as the binary). */
export async function runCli(args: string[], o: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on("data", (c: Buffer) => chunks.out.push(c));
  err.on("data", (c: Buffer) => chunks.err.push(c));
  const code = await main(args, { out, err, stdin: Readable.from([o.stdin ?? ""]) }, o.env ?? {});
  const stdout = Buffer.concat(chunks.out).toString();
  return { code, stdout, stderr: Buffer.concat(chunks.err).toString(), json: () => JSON.parse(stdout) };
}
