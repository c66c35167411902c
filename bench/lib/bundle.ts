/**
 * The product's parts in a benchmark run as the product ships them: bundled by esbuild as
 * scripts/build.mjs bundles dist/ (ES modules, target node20, no `keepNames`), not transformed
 * module by module by tsx, whose `keepNames` wraps every closure the code creates in a `__name`
 * call (5% of a connection point's CPU per small request, measured). npm packages stay external
 * and resolve from the repository's node_modules, where the bundle is written.
 */
import { buildSync } from "esbuild";
import { mkdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";

const REPO = join(import.meta.dirname, "..", "..");
const OUT = join(REPO, "node_modules", ".cache", "opencmg-bench");
const built = new Map<string, string>();

/** The path of `entry` bundled for this process (built once; removed when this process exits). */
export function bundled(entry: string): string {
  let out = built.get(entry);
  if (out) return out;
  mkdirSync(OUT, { recursive: true });
  // One file per bench process: two benchmarks started together must not overwrite each other's.
  out = join(OUT, `${basename(entry).replace(/\.ts$/, "")}-${process.pid}.mjs`);
  buildSync({
    absWorkingDir: REPO,
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    sourcemap: true,
    logLevel: "warning",
    // Bundled CommonJS code calls require() for Node's own modules (as in scripts/build.mjs).
    banner: { js: 'import { createRequire as __opencmgCreateRequire } from "node:module"; const require = __opencmgCreateRequire(import.meta.url);' },
  });
  built.set(entry, out);
  const file = out;
  process.once("exit", () => {
    rmSync(file, { force: true });
    rmSync(`${file}.map`, { force: true });
  });
  return out;
}
