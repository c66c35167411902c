#!/usr/bin/env node
// Development only: runs `opencmg` from the TypeScript sources through tsx, without a build.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
