#!/usr/bin/env node
// The `opencmg` command. tsx compiles the TypeScript sources on load, so a checkout runs
// right after `npm ci` with no build step, on Node 20.12+, 22 and 24 alike.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
