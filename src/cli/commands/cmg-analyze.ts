/** `opencmg cmg analyze NAME`: the connection analyzer (src/site/services/cmg-analyze.ts), one line per check. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import { parseDuration } from "../../duration.ts";
import type { CmgAnalysis } from "../../site/services/cmg-analyze.ts";
import type { CliContext } from "../context.ts";

function readText(field: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new ValidationError(field, "must be a readable file", `${field}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Adds `analyze` to the `cmg` command (registered by commands/cmg.ts, loaded first). */
export function registerCmgAnalyzeCommand(program: Command, ctx: CliContext): void {
  const cmg = program.commands.find((c) => c.name() === "cmg") ?? program.command("cmg");
  cmg
    .command("analyze <name>")
    .description("connection analyzer: name resolution, TLS and certificates of each instance, a client certificate, tunnels, location requests; exit 0 when every check passes")
    .option("--cert <file>", "a client authentication certificate a device uses (PEM)")
    .option("--key <file>", "its private key (PEM; read, never stored)")
    .option("--ca <file>", "roots devices trust for the server certificate, besides the system's, NODE_EXTRA_CA_CERTS and the CMG's trusted roots (PEM)")
    .option("--timeout <duration>", "for each network step", "10s")
    .action(async (name: string, o: { cert?: string; key?: string; ca?: string; timeout: string }, cmd: Command) => {
      const { analyzeCmg, machineExtraCaPem } = await import("../../site/services/cmg-analyze.ts");
      // What this machine trusts counts too (NODE_EXTRA_CA_CERTS), as for any other TLS client here.
      const input = { clientCertPem: readText("cert", o.cert), clientKeyPem: readText("key", o.key), caPem: readText("ca", o.ca), machineCaPem: machineExtraCaPem() };
      const timeoutMs = parseDuration("timeout", o.timeout);
      const a = await ctx.withSite(cmd, (s) => analyzeCmg({ cmgs: s.services.cmgs, timeoutMs }, name, input));
      ctx.print(cmd, a, () => analysisText(a));
      if (!a.ok) throw Object.assign(new Error("a check failed"), { silent: true });
    });
}

/** One line per check; what to do in the command line's words (cliFix) where they differ from the console's. */
function analysisText(a: CmgAnalysis): string {
  const mark = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const;
  const label = { pass: "note", fail: "fix", skip: "to check it" } as const;
  const lines = a.checks.map((c) => {
    const todo = c.cliFix ?? c.fix;
    return `${mark[c.status]}  ${c.check}: ${c.detail}${todo ? `\n      ${label[c.status]}: ${todo}` : ""}`;
  });
  lines.push(`CMG ${a.cmg}: ${a.passed} passed, ${a.failed} failed, ${a.skipped} not checked.`);
  return lines.join("\n") + "\n";
}
