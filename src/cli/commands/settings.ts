import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { isSettingKey, SITE_SETTINGS, type SettingDefinition, type SettingView } from "../../site/services/settings.ts";
import { ValidationError } from "../../errors.ts";
import { readStdin } from "../output.ts";

const show = (v: SettingView): string =>
  keyValues({ key: v.key, value: v.value, default: v.default, description: v.description, rule: v.rule, updatedAt: v.updatedAt });

export function registerSettingsCommands(program: Command, ctx: CliContext): void {
  const settings = program.command("settings").description("site-wide settings: schedules' intervals and client defaults");
  settings
    .command("list")
    .description("every site setting with its value and default")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.settings.list();
        ctx.print(cmd, list, () => table(list.map((v) => ({ ...v, value: v.isDefault ? v.value : `${v.value} *` })), ["key", "value", "default", "description"]) + "(* differs from the default)\n");
      });
    });
  settings
    .command("get <key>")
    .description("one setting, with its rule")
    .action(async (key: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const v = await s.services.settings.get(key);
        ctx.print(cmd, v, () => show(v));
      });
    });
  settings
    .command("set <key> [value]")
    .description("change a setting, e.g. `settings set traffic-report-interval 1m`; a secret (admin-oidc-client-secret) only from standard input with --value-stdin")
    .option("--value-stdin", "read the value from standard input (a secret never goes on the command line)")
    .action(async (key: string, given: string | undefined, o: { valueStdin?: boolean }, cmd: Command) => {
      const secret = isSettingKey(key) && (SITE_SETTINGS[key] as SettingDefinition).secret === true;
      if (secret && given !== undefined) throw new ValidationError("value", "must come from standard input (--value-stdin) for a secret", `value: ${key} is a secret: give it on standard input with --value-stdin, never on the command line`);
      if (o.valueStdin && given !== undefined) throw new ValidationError("value", "must be given once", "value: give it on the command line or with --value-stdin, not both");
      if (!o.valueStdin && given === undefined) throw new ValidationError("value", "is required", "value: give the new value (or --value-stdin)");
      const value = o.valueStdin ? (await readStdin(ctx.io.stdin)).replace(/\r?\n$/, "") : given!;
      await ctx.withSite(cmd, async (s) => {
        const v = await s.services.settings.set(key, value);
        ctx.print(cmd, v, () => `${v.key} is now ${v.value}${v.isDefault ? " (the default)" : ""}.\n`);
      });
    });
  settings
    .command("reset <key>")
    .description("put a setting back to its default")
    .action(async (key: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const v = await s.services.settings.reset(key);
        ctx.print(cmd, v, () => `${v.key} is back to its default, ${v.value}.\n`);
      });
    });
}
