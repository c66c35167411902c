/**
 * Entry point of bench/gateway.ts's child processes: `child.ts MODE ARG...`.
 *   load JOB_JSON            one load job (prints "warm", waits for a line on stdin, prints the result)
 *   idle JOB_JSON            opens and holds idle authenticated connections until stdin closes
 *   backend | gateway | cp | floor-gw | floor-cp | floor-h1-gw | floor-h1-cp SETUP_FILE [SQUID_PORT]   a part (IPC)
 */
import { readFileSync } from "node:fs";
import { runIdle, runLoad, type LoadJob, type Target } from "./load.ts";
import { runBackend, runConnectionPoint, runFloorConnectionPoint, runFloorGateway, runGateway, type Setup } from "./parts.ts";

const [mode, a1, a2] = process.argv.slice(2);
const exitOnError = (err: unknown): void => {
  console.error(err);
  process.exit(1);
};
const setup = (): Setup => JSON.parse(readFileSync(a1!, "utf8")) as Setup;

if (mode === "load") {
  runLoad(JSON.parse(a1!) as LoadJob).then((r) => {
    process.stdout.write(JSON.stringify(r) + "\n");
    process.exit(0);
  }, exitOnError);
} else if (mode === "idle") {
  const j = JSON.parse(a1!) as { target: Target; n: number };
  runIdle(j.target, j.n).catch(exitOnError);
} else if (mode === "backend") {
  runBackend().catch(exitOnError);
} else if (mode === "gateway") {
  runGateway(setup()).catch(exitOnError);
} else if (mode === "floor-gw") {
  runFloorGateway(setup()).catch(exitOnError);
} else if (mode === "floor-cp") {
  runFloorConnectionPoint(setup());
} else if (mode === "floor-h1-gw") {
  runFloorGateway(setup(), true).catch(exitOnError);
} else if (mode === "floor-h1-cp") {
  runFloorConnectionPoint(setup(), true);
} else if (mode === "cp") {
  runConnectionPoint(setup(), a2 ? Number(a2) : null).catch(exitOnError);
} else {
  exitOnError(new Error(`unknown mode ${mode}`));
}
