/**
 * `opencmg client ...` (the agent on a managed device, state in its own folder) and
 * `opencmg site clients ...` (the site's view of its clients).
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { onOff } from "../options.ts";
import { ValidationError } from "../../errors.ts";
import { ClientAgent, type AgentOptions } from "../../client/agent.ts";
import { clientCandidates, clientStatus, MAX_STATUS_COPIES, queueStatusCopies } from "../../client/folder.ts";
import { installClient } from "../../client/install.ts";
import { parseResolve, staticResolver } from "../../client/addresses.ts";
import { parseDuration } from "../../duration.ts";
import { clientDir } from "../../client/store.ts";
import type { CliContext } from "../context.ts";
import { keyValues, readStdin, table } from "../output.ts";
import { waitForStop } from "../../app/signals.ts";
import type { ClientDiagnosis } from "../../client/diagnose.ts";

function readPem(field: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ValidationError(field, "must be a readable file", `${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function wholeNumber(field: string, value: string, min: number, max: number): number {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ValidationError(field, `must be a whole number from ${min} to ${max}`, `${field}: must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
  return Number(value);
}


interface RunOptions {
  once?: boolean;
  internalProbe?: string;
  locationInterval?: string;
  checkInterval?: string;
  probeTimeout?: string;
  resolve?: string[];
}

const collectResolve = (v: string, prev: string[] = []): string[] => [...prev, v];
const RESOLVE_HELP = "NAME=ADDR[,ADDR...]: the addresses a service name stands for, as a hosts file would (repeatable; default the system's resolver: every address of the name)";
/** `--resolve` pairs as a resolver (other names: the system's). */
const resolverOf = (values: string[] | undefined) => (values?.length ? staticResolver(parseResolve(values)) : undefined);

export function registerClientCommands(program: Command, ctx: CliContext): void {
  const client = program
    .command("client")
    .description("the client agent of a managed device (state in --client-dir)")
    .option("--client-dir <dir>", "the agent's folder (default $OPENCMG_CLIENT_DIR, else ./opencmg-client)");
  const dirOf = (cmd: Command): string => clientDir((cmd.optsWithGlobals() as { clientDir?: string }).clientDir, ctx.env);
  registerInstall(client, ctx, dirOf);
  registerRun(client, ctx, dirOf);
  registerFolderViews(client, ctx, dirOf);
  registerRenew(client, ctx, dirOf);
  registerSiteClientCommands(program, ctx);
}

type DirOf = (cmd: Command) => string;

/** `client install`. */
function registerInstall(client: Command, ctx: CliContext, dirOf: DirOf): void {
  client
    .command("install")
    .description("register with a management point and make the first location request (a folder that holds a client token, got at a certificate or approved registration, installs again at the CMG's token URL without --cert)")
    .requiredOption("--mp <url>", "management point URL (https://FQDN, or its URL through a CMG)")
    .option("--always-internet", "always use the CMG, wherever the device is (CCMALWAYSINF=1)")
    .option("--cert <file>", "client authentication certificate (PEM); without it the site must approve the client")
    .option("--key <file>", "its private key (PEM); copied into the client folder with mode 0600")
    .option("--ca <file>", "trusted roots for the management points' and CMGs' server certificates (PEM)")
    .option("--name <name>", "computer name (default: this host's name)")
    .option("--internal-probe <url>", "an internal URL whose answer means the device is on the intranet")
    .option("--token <token>", "a bulk registration token (opencmg token create-bulk), or - to read it from standard input (out of the process list); --mp is then the CMG's token URL, .../CCM_Proxy_ServerAuth/<roleId>")
    .option("--id-token <file>", "a file holding an ID token of the directory the site trusts (directory sign-in), instead of --token")
    .option("--new-key", "with --id-token, in an installed folder: move the client to a new key, proving the change with its current key")
    .option("--resolve <name=addrs>", RESOLVE_HELP, collectResolve)
    .action(async (o: { mp: string; alwaysInternet?: boolean; cert?: string; key?: string; ca?: string; name?: string; internalProbe?: string; token?: string; idToken?: string; newKey?: boolean; resolve?: string[] }, cmd: Command) => {
      const r = await installClient({
        dir: dirOf(cmd),
        mp: o.mp,
        alwaysInternet: o.alwaysInternet,
        certPem: readPem("cert", o.cert),
        keyPem: readPem("key", o.key),
        caPem: readPem("ca", o.ca),
        name: o.name,
        internalProbe: o.internalProbe,
        bulkToken: o.token === "-" ? (await readStdin(ctx.io.stdin)).trim() : o.token,
        idToken: readPem("idToken", o.idToken)?.trim(),
        newKey: o.newKey,
        resolver: resolverOf(o.resolve),
      });
      ctx.print(cmd, r, () =>
        keyValues({
          client: `${r.clientId} (${r.name})`,
          approved: r.approved ? "yes" : `no: the site approves it with \`opencmg site clients approve ${r.clientId}\``,
          "registered at": r.mp,
          "client folder": r.dir,
          "management points": r.candidates.map((m) => `${m.type} ${m.url}`).join(", ") || "(none)",
        }),
      );
    });
}

/** `client run` (once, or until Ctrl-C). */
function registerRun(client: Command, ctx: CliContext, dirOf: DirOf): void {
  client
    .command("run")
    .description("keep the device managed: intranet/internet, location, policy, status uploads")
    .option("--once", "one full cycle, then exit")
    .option("--internal-probe <url>", "an internal URL whose answer means the device is on the intranet")
    .option("--location-interval <duration>", "time between location requests (default: the client settings, 24h)")
    .option("--check-interval <duration>", "time between intranet/internet checks", "5m")
    .option("--probe-timeout <duration>", "how long an intranet MP or the probe has to answer", "3s")
    .option("--resolve <name=addrs>", RESOLVE_HELP, collectResolve)
    .action(async (o: RunOptions, cmd: Command) => {
      const opts: AgentOptions = {
        dir: dirOf(cmd),
        internalProbe: o.internalProbe,
        locationIntervalMs: o.locationInterval ? parseDuration("location-interval", o.locationInterval) : undefined,
        checkIntervalMs: parseDuration("check-interval", o.checkInterval ?? "5m"),
        probeTimeoutMs: parseDuration("probe-timeout", o.probeTimeout ?? "3s"),
        resolver: resolverOf(o.resolve),
      };
      const agent = new ClientAgent(opts);
      try {
        if (o.once) {
          const r = await agent.cycle();
          ctx.print(cmd, r, () =>
            keyValues({
              connection: r.connectionType,
              "management point": r.mp,
              // Which of the name's addresses (CMG instances) served the cycle, when it has several.
              "served by": r.address,
              location: r.located ? "updated" : "not requested",
              policy: r.policy ? "updated" : "not requested",
              uploaded: r.uploaded,
              queued: r.queued,
            }),
          );
          if (r.errors.length > 0) {
            for (const e of r.errors) ctx.io.err.write(`error: ${e}\n`);
            throw Object.assign(new Error(r.errors.join("; ")), { silent: true });
          }
          return;
        }
        const abort = new AbortController();
        void waitForStop().then(() => abort.abort());
        ctx.io.err.write(`OpenCMG client agent running from ${opts.dir}; Ctrl-C stops it\n`);
        await agent.run(abort.signal);
      } finally {
        await agent.close();
      }
    });
}

/** `client renew-token`: a new client token now (the agent renews by itself after 30 days). */
function registerRenew(client: Command, ctx: CliContext, dirOf: DirOf): void {
  client
    .command("renew-token")
    .description("renew the client token now (a client installed with --token or --id-token)")
    .action(async (_o: unknown, cmd: Command) => {
      const agent = new ClientAgent({ dir: dirOf(cmd) });
      try {
        const r = await agent.renewToken(agent.mpForRenewal(), true);
        ctx.print(cmd, r, () => `Client token renewed, valid until ${r.expiresAt}.\n`);
      } finally {
        await agent.close();
      }
    });
}

/** `client locate`, `status`, `send-status`: the client folder without running the agent. */
function registerFolderViews(client: Command, ctx: CliContext, dirOf: DirOf): void {
  client
    .command("locate")
    .description("the management point candidates of the last location request (Intranet/Internet)")
    .action(async (_o: unknown, cmd: Command) => {
      const list = clientCandidates(dirOf(cmd));
      ctx.print(cmd, list, () => table(list.map((m) => ({ type: m.type, url: m.url, name: m.fqdn ?? m.cmg })), ["type", "url", "name"]));
    });

  client
    .command("status")
    .description("connection type, management point in use, last location and policy, queued uploads")
    .action(async (_o: unknown, cmd: Command) => {
      const s = clientStatus(dirOf(cmd));
      ctx.print(cmd, s, () =>
        keyValues({
          client: `${s.clientId} (${s.name})${s.approved ? "" : " awaiting approval"}`,
          connection: s.connectionType,
          "management point": s.mpInUse,
          "always internet": s.alwaysInternet ? "yes" : "no",
          "last location": s.lastLocationAt,
          "last policy": s.lastPolicyAt,
          "last upload": s.lastUploadAt,
          "queued uploads": s.queuedUploads,
          "last error": s.lastError,
          "last refusal": s.lastRefusal
            ? `${s.lastRefusal.at} ${s.lastRefusal.byGateway ? "by the CMG" : "by the management point"}: ${s.lastRefusal.status} ${s.lastRefusal.reason}${s.lastRefusal.cause ? ` (${s.lastRefusal.cause})` : ""}, ${s.lastRefusal.check} check (opencmg client diagnose)`
            : null,
        }),
      );
    });

  client
    .command("diagnose")
    .description("why the device cannot connect through its CMG: which check refused it and what to fix")
    .option("--timeout <duration>", "how long each CMG has to answer", "15s")
    .action(async (o: { timeout: string }, cmd: Command) => {
      const { diagnoseClient } = await import("../../client/diagnose.ts");
      const d = await diagnoseClient(dirOf(cmd), { timeoutMs: parseDuration("timeout", o.timeout) });
      ctx.print(cmd, d, () => diagnosisText(d));
      if (!d.ok) throw Object.assign(new Error("a check failed"), { silent: true });
    });

  client
    .command("send-status")
    .description("queue status messages for upload (sent by the next `client run`)")
    .requiredOption("--id <messageId>", "status message ID")
    .requiredOption("--text <text>", "message text")
    .option("--count <n>", "queue this many copies (each with its own upload ID)", "1")
    .option("--severity <s>", "informational, warning or error", "informational")
    .option("--component <name>", "component", "CCMExec")
    .action(async (o: { id: string; text: string; count: string; severity: string; component: string }, cmd: Command) => {
      const messageId = wholeNumber("id", o.id, 0, 2 ** 31 - 1);
      const count = wholeNumber("count", o.count, 1, MAX_STATUS_COPIES);
      const n = queueStatusCopies(dirOf(cmd), { messageId, text: o.text, severity: o.severity as "informational", component: o.component }, count);
      ctx.print(cmd, { queued: n }, () => `Queued ${n} status message(s).\n`);
    });
}

/** One line per check, then the refusal and its fix. */
function diagnosisText(d: ClientDiagnosis): string {
  const mark = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const;
  const lines = d.checks.map((c) => `${mark[c.status]}  ${c.check}: ${c.detail}${c.fix ? `\n      fix: ${c.fix}` : ""}`);
  const r = d.refusedBy;
  if (r) lines.push(`${r.byGateway ? "Refused by the CMG's" : "The CMG would refuse it at its"} ${r.check} check (${r.reason}${r.cause ? `, ${r.cause}` : ""}): ${r.fix}`);
  if (d.lastRefusal) lines.push(`Last refusal recorded: ${d.lastRefusal.at}, ${d.lastRefusal.status} ${d.lastRefusal.reason} at ${d.lastRefusal.url}.`);
  lines.push(d.ok ? "All checks passed." : "A check failed.");
  return lines.join("\n") + "\n";
}

/** `opencmg site clients [approve ID | settings]`, under the `site` command. */
function registerSiteClientCommands(program: Command, ctx: CliContext): void {
  const site = program.commands.find((c) => c.name() === "site") ?? program.command("site");
  const clients = site
    .command("clients")
    .description("registered clients, with their last contact and connection type")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.clients.list();
        ctx.print(cmd, list, () =>
          table(
            list.map((c) => ({ id: c.id, name: c.name, approved: c.approved ? "yes" : "no", connection: c.connectionType, lastContact: c.lastContactAt, certificate: c.thumbprint ?? (c.tokenKey ? "(token)" : null), blocked: c.blocked ? "yes" : "no", statusRefused: c.statusRefused })),
            ["id", "name", "approved", "connection", "lastContact", "certificate", "blocked", "statusRefused"],
          ),
        );
      });
    });
  clients
    .command("approve <id>")
    .description("approve a client that registered without a certificate")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const c = await s.services.clients.approve(id);
        ctx.print(cmd, c, () => `Approved client ${c.id} (${c.name}).\n`);
      });
    });
  clients
    .command("approve-key <id> <keyThumbprint>")
    .description("let a client replace its bound token key by this one at its next registration (a device that lost its key); the refusal it got names both")
    .action(async (id: string, jkt: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const c = await s.services.clients.approveKey(id, jkt);
        ctx.print(cmd, c, () => `Client ${c.id} (${c.name}) may bind key ${c.approvedTokenKey} in place of ${c.tokenKey ?? "(none)"} at its next registration.\n`);
      });
    });
  for (const [word, blocked] of [["block", true], ["unblock", false]] as const) {
    clients
      .command(`${word} <id>`)
      .description(blocked ? "block a client: refused by the management points at once and by every CMG instance within a minute" : "let a blocked client in again")
      .action(async (id: string, _o: unknown, cmd: Command) => {
        await ctx.withSite(cmd, async (s) => {
          const c = await s.services.clients.block(id, blocked);
          ctx.print(cmd, c, () => `Client ${c.id} (${c.name}) ${blocked ? "blocked" : "unblocked"}.\n`);
        });
      });
  }
  clients
    .command("settings")
    .description("show or change the default client settings (policy)")
    .option("--location-interval <minutes>", "minutes between location requests (default 1440 = 24 h)")
    .option("--policy-interval <minutes>", "minutes between policy requests (default 60)")
    .option("--use-cmg <on|off>", "clients receive CMG locations")
    .option("--always-internet <on|off>", "clients always use the CMG (ClientAlwaysOnInternet)")
    .action(async (o: { locationInterval?: string; policyInterval?: string; useCmg?: string; alwaysInternet?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const svc = s.services.clients;
        const patch = {
          locationIntervalMinutes: o.locationInterval,
          policyIntervalMinutes: o.policyInterval,
          useCmg: onOff("--use-cmg", o.useCmg),
          alwaysOnInternet: onOff("--always-internet", o.alwaysInternet),
        };
        const changed = Object.values(patch).some((v) => v !== undefined);
        const settings = changed ? await svc.setSettings(patch) : await svc.settings();
        ctx.print(cmd, settings, () => keyValues(settings as unknown as Record<string, unknown>));
      });
    });
}
