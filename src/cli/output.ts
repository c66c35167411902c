/** Printing for people (aligned tables) or machines (`--json`). No business rules here. */
import type { Writable } from "node:stream";
import type { NetError } from "../errors.ts";

export interface Io {
  out: Writable;
  err: Writable;
  /** Standard input, for `--password-stdin`. */
  stdin: NodeJS.ReadableStream;
}

export function table(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  if (rows.length === 0) return "(none)\n";
  const cell = (v: unknown): string => (v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join("\n") + "\n";
}

export function keyValues(obj: Record<string, unknown>): string {
  const w = Math.max(...Object.keys(obj).map((k) => k.length));
  return Object.entries(obj).map(([k, v]) => `${k.padEnd(w)}  ${v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v)}`).join("\n") + "\n";
}

/** Reads all of stdin (for secrets: never from the command line, where `ps` would show them). */
export async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** "error 12029 at the proxy (proxy.contoso.com)" for a network failure, else undefined. */
export function describeFailure(e: unknown): string | undefined {
  const n = e as Partial<NetError>;
  return n && typeof n.hop === "string" ? `error ${String(n.code)} at the ${n.hop} (${n.host})` : undefined;
}
