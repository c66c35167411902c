// downloadToFile through a real Squid with Basic authentication: the file lands whole and
// verified, or nothing lands at all.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { NetError } from "../errors.ts";
import { closeMidBody, serveBytes, serveStatus } from "../../test/helpers/internet.ts";
import { ContentMismatchError, HttpStatusError, downloadToFile } from "./download.ts";
import { setUp, type Fixture } from "../../test/e2e/egress/egress.cases.ts";
import { Egress } from "./egress.ts";

describe("downloadToFile (through a proxy with authentication)", () => {
  let f: Fixture;
  let egress: Egress;
  let dir: string;
  const content = randomBytes(2 * 1024 * 1024 + 3);
  const sha256 = createHash("sha256").update(content).digest("hex");

  before(async () => {
    f = await setUp("proxy+auth");
    f.internet.route("/kb/update.cab", serveBytes(content));
    f.internet.route("/kb/cut.cab", closeMidBody(content, 512 * 1024));
    f.internet.route("/kb/gone.cab", serveStatus(404));
    egress = f.egress();
  });
  beforeEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(join(tmpdir(), "opencmg-content-"));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await f?.close();
  });

  for (const scheme of ["http", "https"] as const) {
    it(`${scheme}: writes the verified file and reports progress`, async () => {
      const dest = join(dir, "update.cab");
      const seen: number[] = [];
      const r = await downloadToFile(egress, f.internet.url(scheme, "/kb/update.cab"), dest, {
        expectedSize: content.length,
        sha256: sha256.toUpperCase(),
        onProgress: ({ bytes, total }) => {
          assert.equal(total, content.length);
          seen.push(bytes);
        },
      });
      assert.deepEqual(r, { bytes: content.length, sha256 });
      assert.ok(readFileSync(dest).equals(content));
      assert.deepEqual(readdirSync(dir), ["update.cab"], "no temp file left");
      assert.ok(seen.length > 1 && seen.every((b, i) => i === 0 || b > seen[i - 1]!) && seen.at(-1) === content.length);
    });
  }

  it("content whose SHA-256 does not match is refused and not kept", async () => {
    const dest = join(dir, "update.cab");
    const wrong = "0".repeat(64);
    await assert.rejects(
      downloadToFile(egress, f.internet.url("https", "/kb/update.cab"), dest, { sha256: wrong }),
      (e) => e instanceof ContentMismatchError && e.code === "CONTENT_HASH_MISMATCH" && e.expected === wrong && e.actual === sha256,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a size that does not match is refused before anything is written", async () => {
    const dest = join(dir, "update.cab");
    await assert.rejects(
      downloadToFile(egress, f.internet.url("http", "/kb/update.cab"), dest, { expectedSize: content.length - 1 }),
      (e) => e instanceof ContentMismatchError && e.code === "CONTENT_SIZE_MISMATCH",
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  for (const scheme of ["http", "https"] as const) {
    it(`${scheme}: an interrupted download leaves no partial file (12030)`, async () => {
      const dest = join(dir, "cut.cab");
      let got = 0;
      await assert.rejects(
        downloadToFile(egress, f.internet.url(scheme, "/kb/cut.cab"), dest, { onProgress: ({ bytes }) => (got = bytes) }),
        (e) => e instanceof NetError && e.code === 12030 && e.hop === "target",
      );
      assert.ok(got > 0, "some bytes had arrived before the cut");
      assert.equal(existsSync(dest), false);
      assert.deepEqual(readdirSync(dir), []);
    });
  }

  it("a 404 is an HttpStatusError, nothing written", async () => {
    await assert.rejects(downloadToFile(egress, f.internet.url("http", "/kb/gone.cab"), join(dir, "gone.cab")), (e) => e instanceof HttpStatusError && e.code === 404);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a name that does not resolve -> 12007, nothing written", async () => {
    await assert.rejects(
      downloadToFile(egress, "http://download.windowsupdate.invalid/kb/update.cab", join(dir, "update.cab")),
      (e) => e instanceof NetError && e.code === 12007,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it("an abort midway leaves no partial file", async () => {
    const dest = join(dir, "update.cab");
    const ac = new AbortController();
    let last = 0;
    await assert.rejects(
      downloadToFile(egress, f.internet.url("https", "/kb/update.cab"), dest, {
        signal: ac.signal,
        onProgress: ({ bytes }) => {
          last = bytes;
          if (bytes > 256 * 1024) ac.abort();
        },
      }),
      (e: unknown) => e instanceof Error && e.name === "AbortError",
    );
    assert.ok(last > 256 * 1024 && last < content.length, `aborted midway, after ${last} of ${content.length} bytes`);
    assert.deepEqual(readdirSync(dir), []);
  });
});
