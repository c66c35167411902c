// Builds what `opencmg` runs: src/ bundled by esbuild into dist/ (ES modules, one chunk per
// command's own code, loaded when that command runs). One file per chunk instead of hundreds of
// small modules is what makes a command start fast; `npm test` type-checks the sources with tsc.
// `npm ci` runs this through the package's `prepare` script. Then the administration console
// (console/: React + Fluent UI) is built by Vite into dist/console, which the site server serves.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist");
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { "cli/main": "src/cli/main.ts" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning",
  metafile: true,
  // Left to Node: native addons (better-sqlite3), packages that load files of their own at run time
  // (pino's transports run in worker threads; pg's optional native driver); @kubernetes/client-node,
  // whose ws and node-fetch try optional addons (bufferutil, utf-8-validate, encoding) at run time.
  external: ["better-sqlite3", "pg", "pg-native", "pino", "fastify", "@fastify/*", "@kubernetes/client-node"],
  // Bundled CommonJS packages call require() for Node's own modules.
  banner: { js: 'import { createRequire as __opencmgCreateRequire } from "node:module"; const require = __opencmgCreateRequire(import.meta.url);' },
});

// The packages dist/ imports at run time (left external above, found in the output, Node's own
// modules aside): the release test checks that each resolves where the archive is installed
// without dev dependencies; the database drivers are optional (see src/site/db/load-driver.ts).
const externals = new Set();
for (const out of Object.values(result.metafile.outputs)) {
  for (const i of out.imports) {
    if (i.external && !i.path.startsWith("node:") && !builtinModules.includes(i.path)) externals.add(i.path);
  }
}
writeFileSync(join(outdir, "externals.json"), JSON.stringify([...externals].sort(), null, 2) + "\n");

// The console's API types from the OpenAPI document the server serves (the route table's zod
// schemas), before the console is built with them; tsx runs the TypeScript sources as the tests do.
const types = spawnSync(process.execPath, ["--import", "tsx", join(root, "scripts", "api-types.ts")], { cwd: root, stdio: "inherit" });
if (types.status !== 0) throw new Error("scripts/api-types.ts failed: the console's API types were not generated");

// The console: its own Vite config and tsconfig (browser code, kept apart from the server's).
const { build: viteBuild } = await import("vite");
await viteBuild({ configFile: join(root, "console", "vite.config.ts"), logLevel: "warn" });
