/**
 * Downloads one file through an Egress into a temp file next to its destination, checks its size
 * and SHA-256, and only then renames it into place (atomic on one file system). On any failure the
 * temp file is removed: an interrupted or refused download leaves nothing behind.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { OpenCmgError } from "../errors.ts";
import type { Egress } from "./egress.ts";

export interface DownloadOptions {
  /** Bytes the file must have; a different Content-Length fails before anything is written. */
  expectedSize?: number;
  /** Hex SHA-256 the content must have (any case). */
  sha256?: string;
  /** Called as bytes arrive (`total` from expectedSize or Content-Length when known). */
  onProgress?: (p: { bytes: number; total?: number }) => void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  bytes: number;
  /** Lowercase hex. */
  sha256: string;
}

/** Content that is not what was announced: refused, not kept. */
export class ContentMismatchError extends OpenCmgError {
  constructor(
    code: "CONTENT_HASH_MISMATCH" | "CONTENT_SIZE_MISMATCH",
    readonly url: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    const what = code === "CONTENT_HASH_MISMATCH" ? "SHA-256" : "size";
    super("net", code, `${url}: ${what} is ${actual}, expected ${expected}: the content was refused and not kept; check the source`);
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), url: this.url, expected: this.expected, actual: this.actual };
  }
}

/** The target answered, but not with the file (404, 500...). `code` is the HTTP status. */
export class HttpStatusError extends OpenCmgError {
  constructor(
    readonly status: number,
    readonly url: string,
  ) {
    super("net", status, `${url}: the server answered ${status} instead of the file: check the URL and the source`);
  }
}

/**
 * @example
 * const { bytes, sha256 } = await downloadToFile(egress, "http://download.windowsupdate.com/kb.cab", "/var/lib/opencmg/content/kb.cab",
 *   { expectedSize: 1048576, sha256: "9f86d0...", onProgress: ({ bytes, total }) => bar.update(bytes, total) });
 */
export async function downloadToFile(egress: Egress, url: string, destPath: string, o: DownloadOptions = {}): Promise<DownloadResult> {
  const safeUrl = url.split("?")[0]!; // messages never carry a query (signed URLs)
  const temp = join(dirname(destPath), `.${basename(destPath)}.${randomBytes(6).toString("hex")}.part`);
  const res = await egress.request(url, { method: "GET", signal: o.signal });
  try {
    if (res.statusCode !== 200) throw new HttpStatusError(res.statusCode, safeUrl);
    const announced = res.headers["content-length"] === undefined ? undefined : Number(res.headers["content-length"]);
    if (o.expectedSize !== undefined && announced !== undefined && announced !== o.expectedSize) {
      throw new ContentMismatchError("CONTENT_SIZE_MISMATCH", safeUrl, String(o.expectedSize), String(announced));
    }
    const total = o.expectedSize ?? announced;
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      await pipeline(
        res.body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            bytes += chunk.length;
            if (o.expectedSize !== undefined && bytes > o.expectedSize) {
              throw new ContentMismatchError("CONTENT_SIZE_MISMATCH", safeUrl, String(o.expectedSize), `more than ${o.expectedSize}`);
            }
            hash.update(chunk);
            o.onProgress?.({ bytes, total });
            yield chunk;
          }
        },
        // wx: never write over someone else's file; flush: on disk before the rename.
        createWriteStream(temp, { flags: "wx", flush: true }),
        { signal: o.signal },
      );
      const sha256 = hash.digest("hex");
      if (o.expectedSize !== undefined && bytes !== o.expectedSize) {
        throw new ContentMismatchError("CONTENT_SIZE_MISMATCH", safeUrl, String(o.expectedSize), String(bytes));
      }
      if (o.sha256 !== undefined && sha256 !== o.sha256.toLowerCase()) {
        throw new ContentMismatchError("CONTENT_HASH_MISMATCH", safeUrl, o.sha256.toLowerCase(), sha256);
      }
      await rename(temp, destPath);
      return { bytes, sha256 };
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
  } finally {
    // Whatever is left of a body we did not take (an error page) is drained, so the connection
    // can serve the next request; dump() drops the connection instead past a small limit.
    if (!res.body.destroyed) await res.body.dump().catch(() => {});
  }
}
