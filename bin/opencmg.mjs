#!/usr/bin/env node
// The `opencmg` command: runs the compiled JavaScript in dist/ (built by `npm ci` through the
// package's `prepare` script, or `npm run build`). For development from the TypeScript sources
// without a build: `npm run dev -- ARGS` (tsx).
let main;
try {
  ({ main } = await import("../dist/cli/main.js"));
} catch (e) {
  if (e?.code !== "ERR_MODULE_NOT_FOUND" || !String(e.message).includes("dist")) throw e;
  process.stderr.write("error: opencmg is not built: run `npm run build` (npm ci does it) in the package folder\n");
  process.exit(1);
}
process.exitCode = await main(process.argv.slice(2));
