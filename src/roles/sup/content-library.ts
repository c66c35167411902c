/**
 * The content library: update files the ADRs downloaded, under `<data>/content/<updateId>/<file>`.
 * Files land by atomic rename after their size and SHA-256 were verified, so whatever is in the
 * library is whole.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { UpdateFile } from "./update-catalog.ts";

export class ContentLibrary {
  constructor(readonly root: string) {}

  pathOf(updateId: string, file: Pick<UpdateFile, "name">): string {
    return join(this.root, updateId, file.name);
  }

  prepare(updateId: string): string {
    const dir = join(this.root, updateId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** True when the file is already in the library with the expected size and hash. */
  async has(updateId: string, file: UpdateFile): Promise<boolean> {
    const p = this.pathOf(updateId, file);
    if (!existsSync(p) || statSync(p).size !== file.size) return false;
    return (await sha256File(p)) === file.sha256;
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}
