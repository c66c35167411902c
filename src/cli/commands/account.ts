import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import type { CliContext } from "../context.ts";
import { readStdin, table } from "../output.ts";

export function registerAccountCommands(program: Command, ctx: CliContext): void {
  const account = program.command("account").description("accounts, such as the site system proxy server account");
  const password = async (o: { passwordStdin?: boolean }): Promise<string> => {
    if (!o.passwordStdin) throw new ValidationError("password", "give it on standard input with --password-stdin (never on the command line)");
    return readStdin(ctx.io.stdin);
  };
  account
    .command("add <name>")
    .description("create an account, e.g. CONTOSO\\svc-proxy (password read from stdin)")
    .requiredOption("--username <user>", "user name")
    .option("--password-stdin", "read the password from standard input")
    .action(async (name: string, o: { username: string; passwordStdin?: boolean }, cmd: Command) => {
      const secret = await password(o);
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.accounts.add(name, o.username, secret);
        ctx.print(cmd, a, () => `Created account ${a.name}.\n`);
      });
    });
  account
    .command("set-password <name>")
    .description("change an account's password (read from stdin)")
    .option("--username <user>", "new user name")
    .option("--password-stdin", "read the password from standard input")
    .action(async (name: string, o: { username?: string; passwordStdin?: boolean }, cmd: Command) => {
      const secret = await password(o);
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.accounts.setPassword(name, secret, o.username);
        ctx.print(cmd, a, () => `Changed the credentials of ${a.name}.\n`);
      });
    });
  account
    .command("list")
    .description("list accounts (secrets are never shown)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.accounts.list();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["name", "username"]));
      });
    });
  account
    .command("remove <name>")
    .description("remove an account no proxy configuration uses")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        await s.services.accounts.remove(name);
        ctx.print(cmd, { removed: name }, () => `Removed account ${name}.\n`);
      });
    });
}
