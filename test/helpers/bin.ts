/** The package's `opencmg` command (bin/opencmg.mjs, running the built dist/: `npm test` builds first). */
import { join } from "node:path";

export const OPENCMG_BIN = join(import.meta.dirname, "..", "..", "bin", "opencmg.mjs");
