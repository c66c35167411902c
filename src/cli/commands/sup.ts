import type { Command } from "commander";
import { siteOperations } from "../../app/operations.ts";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function registerSupCommands(program: Command, ctx: CliContext): void {
  const sup = program.command("sup").description("software update point: synchronisation and update metadata");
  sup
    .command("sync <fqdn>")
    .description("synchronise update metadata from the upstream update source now")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await siteOperations(s, s.actor).supSync(fqdn);
        ctx.print(cmd, r, () => `Synchronized ${r.updates} updates (${r.added} new) from ${r.upstreamUrl} ${r.route}.\n`);
      });
    });
  sup
    .command("updates")
    .description("list synchronised updates")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.updates.list();
        ctx.print(cmd, list, () => table(list.map((u) => ({ id: u.id, product: u.product, classification: u.classification, released: u.releaseDate, files: u.files.length, title: u.title })), ["id", "product", "classification", "released", "files", "title"]));
      });
    });

  const adr = program.command("adr").description("automatic deployment rules");
  adr
    .command("add <name>")
    .description("create a rule matching updates by product, classification and title")
    .requiredOption("--server <fqdn>", "the software update point whose proxy settings apply")
    .option("--product <name>", "match this product (repeatable)", collect)
    .option("--classification <name>", "match this classification (repeatable)", collect)
    .option("--title <text>", "match titles containing this text")
    .action(async (name: string, o: { server: string; product?: string[]; classification?: string[]; title?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.adrs.add({ name, server: o.server, products: o.product, classifications: o.classification, titleContains: o.title });
        ctx.print(cmd, a, () => `Created automatic deployment rule ${a.name}.\n`);
      });
    });
  adr
    .command("list")
    .description("list rules")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adrs.list();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["name", "server", "products", "classifications", "titleContains"]));
      });
    });
  adr
    .command("run <name>")
    .description("run a rule now: download the matching updates' content (exit 1 if any download failed)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        let last = 0;
        const r = await siteOperations(s, s.actor).adrRun(name, (p) => {
          const now = Date.now();
          if (now - last < 1000 && p.bytes !== p.total) return;
          last = now;
          const pct = p.total ? ` ${Math.floor((100 * p.bytes) / p.total)}%` : "";
          ctx.io.err.write(`  ${p.file}: ${(p.bytes / 1048576).toFixed(1)} MB${p.total ? ` of ${(p.total / 1048576).toFixed(1)} MB` : ""}${pct}\n`);
        });
        ctx.print(cmd, r, () => table(r.files as unknown as Record<string, unknown>[], ["updateId", "file", "status", "code", "bytes", "message"]) + `${r.files.length - r.failed} of ${r.files.length} files in the content library.\n`);
        if (r.failed > 0) {
          ctx.io.err.write(`error: ${r.failed} download(s) failed: ${[...new Set(r.files.filter((f) => f.status === "failed").map((f) => `error ${f.code}: ${f.message}`))].join("; ")}\n`);
          throw Object.assign(new Error("adr run failed"), { silent: true });
        }
      });
    });
  adr
    .command("results <name>")
    .description("the recorded download results of a rule")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adrs.results(name);
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["updateId", "file", "status", "code", "bytes", "message"]));
      });
    });

  const scp = program.command("scp").description("service connection point");
  scp
    .command("check-updates <fqdn>")
    .description("check the product update feed now, through the server's proxy")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await siteOperations(s, s.actor).scpCheckUpdates(fqdn);
        ctx.print(cmd, r, () => `Latest version ${r.latestVersion} (${r.releases} releases) from ${r.url} ${r.route}.\n`);
      });
    });
}
