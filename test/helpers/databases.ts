/**
 * The shared database suite: `forEachDatabase` runs the same tests on the embedded SQLite
 * database and on a real PostgreSQL cluster started for the test file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { startPostgres, type TestPostgres } from "./postgres.ts";

export interface TestDatabase {
  /** "sqlite" or "postgres". */
  kind: string;
  /** A fresh data folder and, for PostgreSQL, a fresh database URL. */
  fresh(): Promise<{ dataDir: string; databaseUrl: string | undefined }>;
}

export function tempDir(prefix = "opencmg-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function forEachDatabase(title: string, body: (db: TestDatabase) => void): void {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  describe(`${title} [sqlite]`, () => {
    body({
      kind: "sqlite",
      async fresh() {
        const dataDir = tempDir();
        dirs.push(dataDir);
        return { dataDir, databaseUrl: undefined };
      },
    });
  });
  describe(`${title} [postgres]`, () => {
    let pgc: TestPostgres | undefined;
    before(async () => {
      pgc = await startPostgres();
    });
    after(async () => {
      await pgc?.stop();
    });
    body({
      kind: "postgres",
      async fresh() {
        const dataDir = tempDir();
        dirs.push(dataDir);
        return { dataDir, databaseUrl: await pgc!.createDatabase() };
      },
    });
  });
}
