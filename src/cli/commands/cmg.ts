import { readFileSync } from "node:fs";
import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { resolveGatewayConfig } from "../../gateway/config.ts";
import { connectWorker, MAX_WORKERS, superviseWorkers, WORKER_ENV } from "../../gateway/workers.ts";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { pino } from "pino";
import { ValidationError } from "../../errors.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstanceConfig } from "../../gateway/instance.ts";
import { loadStartupFile } from "../../gateway/startup-file.ts";
import { LogSet, PINO_LEVEL } from "../../logs/cmtrace.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { DEFAULT_METRICS_HOST } from "../../observe/prometheus.ts";
import { bindHostOpt, LOG_LEVEL_HELP, LOG_SIZE_HELP, LOG_SIZE_MB, logLevelOpt, logSizeOpt } from "../options.ts";
import { writeCmgBundle } from "../../cmg/bundle.ts";
import { runConnectionPointRole } from "../../roles/cmg-connection-point/role.ts";
import { caCertificatesFromFiles, serverCertificateFromFiles, type NamedFile } from "../../cmg/certificate-files.ts";
import { localCmgStatus, startLocalCmg } from "../../cmg/local-runner.ts";
import { deleteCmg, type CmgView } from "../../site/services/cmgs.ts";
import { openSite, type OpenedSite } from "../../site/site.ts";
import { commandPath, type CliContext } from "../context.ts";
import { keyValues, readStdin, table } from "../output.ts";
import { logFatalFaults } from "../../app/faults.ts";
import { waitForStop } from "../../app/signals.ts";
import { connectionPointRoleDeps } from "../../app/role-deps.ts";
import { registerCmgTraffic, trafficText } from "./cmg-traffic.ts";
import { registerCmgManifests } from "./cmg-kubernetes.ts";
import { registerConnectionPointCertCommands, registerSettingsKeyCommands } from "./cmg-trust.ts";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function readFile(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ValidationError(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The file at `path` with its path as its name; undefined without a path. */
function fileOpt(field: string, path: unknown): NamedFile | undefined {
  return typeof path === "string" ? { name: path, content: readFile(field, path) } : undefined;
}

/** Every certificate of each file, as PEM (a file may hold one CA or a bundle). */
function certFiles(field: string, paths: string[] | undefined): string[] | undefined {
  return caCertificatesFromFiles(field, paths?.map((p) => fileOpt(field, p)!));
}

function portOpt(field: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new ValidationError(field, "must be a whole number");
  return Number(v);
}

function showText(c: CmgView): string {
  return (
    keyValues({
      name: c.name,
      status: `${c.status} (${c.statusReason})`,
      "run state": c.runStateAt ? `${c.runState} since ${c.runStateAt}` : c.runState,
      "service FQDN": c.serviceFqdn,
      "service name": c.serviceName,
      cloud: c.cloud,
      provider: c.provider,
      region: c.region,
      "resource group": c.resourceGroup,
      "VM instances": c.instanceCount,
      "server certificate": `${c.serverCertificate.subject} (${c.serverCertificate.thumbprint}, until ${c.serverCertificate.notAfter})`,
      "trusted roots": c.trustedRoots.map((r) => `${r.subject} (${r.thumbprint})`).join("; ") || "none",
      intermediates: c.intermediates.map((r) => `${r.subject} (${r.thumbprint})`).join("; ") || "none",
      "verify client revocation": c.crlCheck ? "yes" : "no",
      "smallest client RSA key": `${c.minRsaBits} bits`,
      "connection points": c.connectionPointServers.join(", ") || "none",
    }) +
    table(
      c.instances.map((i) => ({
        index: i.index,
        clientUrl: i.clientUrl,
        tunnel: `${i.tunnelHost}:${i.tunnelPort}`,
        connected: i.connectionPoints.filter((x) => x.connected).map((x) => x.server).join(",") || "-",
        restarts: i.restarts,
        lastRestart: i.lastRestartAt ? `${i.lastRestartAt} (exit ${i.lastExit})` : "-",
      })),
      ["index", "clientUrl", "tunnel", "connected", "restarts", "lastRestart"],
    )
  );
}

export function registerCmgCommands(program: Command, ctx: CliContext): void {
  const cmg = program.command("cmg").description("cloud management gateways: create, show, run");
  registerCreate(cmg, ctx);
  registerManage(cmg, ctx);
  registerCmgTraffic(cmg, ctx);
  registerCmgManifests(cmg, ctx);
  registerLocalRun(cmg, ctx);
  registerSettingsKeyCommands(cmg, ctx);
  registerServe(program, ctx);
}

/**
 * A kubernetes CMG with a kubeconfig: its cluster follows the change now (the objects applied, or
 * deleted); a line saying what was done, or "" for a CMG of another provider.
 */
async function followProvider(site: OpenedSite, name: string): Promise<string> {
  const view = await site.services.cmgs.show(name);
  if (view.provider !== "kubernetes") return "";
  const { followed, syncKubernetesCmg } = await import("../../cmg/kubernetes/provider.ts");
  if (!followed(view)) return `CMG ${view.name} names no kubeconfig: apply \`opencmg cmg manifests ${view.name} --kubernetes\` to its cluster yourself.\n`;
  const r = (await syncKubernetesCmg(site, name))!;
  return r.action === "deleted"
    ? `Deleted ${r.objects.length} object(s) of CMG ${view.name} in namespace ${r.namespace}.\n`
    : `Applied ${r.objects.length} object(s) of CMG ${view.name} in namespace ${r.namespace}: StatefulSet replicas ${r.replicas} (${r.readyReplicas} ready).\n`;
}

/** The kubernetes provider's options of `cmg create`, as `deploy.kubernetes` (absent when none is given). */
function kubernetesOptions(o: Record<string, unknown>): { kubernetes?: Record<string, string> } {
  const k = Object.fromEntries(
    Object.entries({ namespace: o.namespace, kubeconfig: typeof o.kubeconfig === "string" ? resolve(o.kubeconfig) : undefined, clusterDomain: o.clusterDomain, image: o.image }).filter((e): e is [string, string] => typeof e[1] === "string"),
  );
  return Object.keys(k).length > 0 ? { kubernetes: k } : {};
}

/** `cmg create`: its many options map one to one onto CmgsService.create's input. */
function registerCreate(cmg: Command, ctx: CliContext): void {
  cmg
    .command("create <name>")
    .description("create a cloud management gateway at the top-level site")
    .option("--server-cert <file>", "server authentication certificate (PEM; may include its chain)")
    .option("--server-key <file>", "its private key (PEM)")
    .option("--server-pfx <file>", "server authentication certificate and key as PFX (password with --pfx-password-stdin)")
    .option("--pfx-password-stdin", "read the PFX password from standard input")
    .option("--service-fqdn <fqdn>", "service FQDN, required with a wildcard certificate (the * replaced)")
    .option("--instances <n>", "VM instances, 1 to 16", "1")
    .option("--trusted-root <file>", "trusted root CA for client certificates (at most 2; repeatable)", collect)
    .option("--intermediate <file>", "intermediate CA for client certificates (at most 4; repeatable)", collect)
    .option("--crl-check", "verify client certificate revocation (default)")
    .option("--no-crl-check", "do not verify client certificate revocation")
    .option("--min-rsa-bits <bits>", "smallest RSA key in a client certificate chain (2048-16384; default 2048; SHA-1 and weaker keys are always refused)")
    .option("--cloud <env>", "public, usgov or custom", "public")
    .option("--region <name>", "region label for the provider", "local")
    .option("--resource-group <name>", "resource group label for the provider")
    .option("--provider <p>", "where instances run: local (this machine), external (hosts you run them on) or kubernetes (a cluster: see --namespace, --kubeconfig)", "local")
    .option("--namespace <ns>", "kubernetes provider: the namespace of its objects (default opencmg)")
    .option("--kubeconfig <file>", "kubernetes provider: the kubeconfig naming the cluster and the credentials to apply with (on the site server)")
    .option("--cluster-domain <domain>", "kubernetes provider: the cluster's DNS domain (default cluster.local)")
    .option("--image <ref>", "kubernetes provider: the gateway image (default localhost/opencmg-gateway:VERSION)")
    .option("--listen-host <addr>", "address the instances' listeners bind", "0.0.0.0")
    .option("--public-host <host>", "host name in the client URL (default: the service FQDN)")
    .option("--instance-host <host>", "host connection points dial (default: 127.0.0.1 for local, the service FQDN for external)")
    .option("--instance-addresses <list>", "each instance on its own host: comma-separated addresses (IP or host name), instance i binds and is dialled at the i-th on the ports themselves (no + i)")
    .option("--client-port <n>", "client port of instance 0; instance i uses this + i", "443")
    .option("--tunnel-port <n>", "tunnel port of instance 0; instance i uses this + i", "10140")
    .option("--metrics-port <n>", "metrics port of instance 0; instance i uses this + i (0: none)", "9440")
    .option("--metrics-host <addr>", "address the instances' metrics listeners bind", DEFAULT_METRICS_HOST)
    .option("--traffic-alert-gb <n>", "alert when outbound traffic over 14 days reaches this many GB (fractions allowed)")
    .option("--traffic-warning-pct <n>", "warning at this % of the threshold", "50")
    .option("--traffic-critical-pct <n>", "critical at this % of the threshold", "90")
    .option("--stop-on-critical", "stop the CMG when the critical level is reached")
    .action(async (name: string, o: Record<string, string | string[] | boolean | undefined>, cmd: Command) => {
      const server = serverCertificateFromFiles({
        cert: fileOpt("serverCert", o.serverCert),
        key: fileOpt("serverKey", o.serverKey),
        pfx: fileOpt("serverPfx", o.serverPfx),
        pfxPassword: o.serverPfx && o.pfxPasswordStdin ? await readStdin(ctx.io.stdin) : undefined,
      });
      await ctx.withSite(cmd, async (s) => {
        const view = await s.services.cmgs.create({
          name,
          serverCertPem: server.certPem,
          serverKeyPem: server.keyPem,
          serverChainPem: server.chainPem,
          serviceFqdn: o.serviceFqdn as string | undefined,
          instances: o.instances as string,
          trustedRoots: certFiles("trustedRoot", o.trustedRoot as string[] | undefined),
          intermediates: certFiles("intermediate", o.intermediate as string[] | undefined),
          crlCheck: o.crlCheck as boolean | undefined,
          minRsaBits: o.minRsaBits as string | undefined,
          cloud: o.cloud as string,
          region: o.region as string,
          resourceGroup: o.resourceGroup as string | undefined,
          provider: o.provider as string,
          deploy: {
            listenHost: o.listenHost as string,
            ...(o.publicHost ? { publicHost: o.publicHost as string } : {}),
            ...(o.instanceHost ? { instanceHost: o.instanceHost as string } : {}),
            ...(o.instanceAddresses !== undefined ? { instanceAddresses: (o.instanceAddresses as string).split(",").map((a) => a.trim()) } : {}),
            clientPortBase: portOpt("clientPort", o.clientPort as string),
            tunnelPortBase: portOpt("tunnelPort", o.tunnelPort as string),
            metricsPortBase: portOpt("metricsPort", o.metricsPort as string),
            metricsHost: bindHostOpt("metricsHost", o.metricsHost as string),
            ...kubernetesOptions(o),
            trafficAlert: o.trafficAlertGb === undefined ? null : { thresholdGb: o.trafficAlertGb as string, warningPct: o.trafficWarningPct as string, criticalPct: o.trafficCriticalPct as string, stopOnCritical: o.stopOnCritical === true },
          },
        });
        const cluster = await followProvider(s, view.name);
        ctx.print(cmd, view, () => `Created CMG ${view.name} for ${view.serviceFqdn} (${view.instanceCount} instance(s)); status ${view.status}: ${view.statusReason}.\n${cluster}`);
      });
    });
}

/** `cmg list`, `show`, `update`, `delete`, `bundle`. */
function registerManage(cmg: Command, ctx: CliContext): void {
  cmg
    .command("list")
    .description("list CMGs with their status")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.cmgs.list();
        ctx.print(cmd, list, () => table(list.map((c) => ({ name: c.name, serviceFqdn: c.serviceFqdn, instances: c.instanceCount, provider: c.provider, status: c.status, reason: c.statusReason })), ["name", "serviceFqdn", "instances", "provider", "status", "reason"]));
      });
    });

  cmg
    .command("show <name>")
    .description("a CMG's settings, instances and status")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const c = await s.services.cmgs.show(name);
        const [traffic, alertStates] = await Promise.all([s.services.cmgTraffic.summary(c.name), s.services.cmgAlerts.states(c.name)]);
        ctx.print(cmd, { ...c, traffic, alertStates }, () => `${showText(c)}\nTraffic:\n${trafficText(traffic, c.deploy.trafficAlert, alertStates)}`);
      });
    });

  cmg
    .command("update <name>")
    .description("change a CMG live (no restart, no dropped clients): instances, server certificate, trusted CAs, revocation checking, traffic alert")
    .option("--instances <n>", "VM instances, 1 to 16 (the provider starts or stops instances)")
    .option("--crl-check", "verify client certificate revocation")
    .option("--no-crl-check", "do not verify client certificate revocation")
    .option("--min-rsa-bits <bits>", "smallest RSA key in a client certificate chain (2048-16384)")
    .option("--add-trusted-root <file>", "add a trusted root CA, keeping the others (at most 2 in all; repeatable)", collect)
    .option("--remove-trusted-root <thumbprint>", "remove the trusted root CA with this SHA-1 thumbprint (repeatable)", collect)
    .option("--add-intermediate <file>", "add an intermediate CA, keeping the others (at most 4 in all; repeatable)", collect)
    .option("--remove-intermediate <thumbprint>", "remove the intermediate CA with this SHA-1 thumbprint (repeatable)", collect)
    .option("--trusted-root <file>", "with --replace-certificates: the new list of trusted roots (repeatable, at most 2)", collect)
    .option("--intermediate <file>", "with --replace-certificates: the new list of intermediates (repeatable, at most 4)", collect)
    .option("--replace-certificates", "let --trusted-root / --intermediate replace the whole lists")
    .option("--force", "apply a trust change even though it would lock clients out (the refusal says who)")
    .option("--server-cert <file>", "renewed server authentication certificate (PEM; may include its chain); same service name")
    .option("--server-key <file>", "its private key")
    .option("--traffic-alert-gb <n>", "alert when outbound traffic over 14 days reaches this many GB (fractions allowed)")
    .option("--traffic-warning-pct <n>", "traffic alert: warning at this % of the threshold (default 50)")
    .option("--traffic-critical-pct <n>", "traffic alert: critical at this % of the threshold (default 90)")
    .option("--stop-on-critical", "traffic alert: stop the CMG when the critical level is reached")
    .option("--no-stop-on-critical", "traffic alert: do not stop the CMG at the critical level")
    .option("--no-traffic-alert", "remove the traffic alert")
    .option("--server-pfx <file>", "renewed certificate and key as PFX (password with --pfx-password-stdin)")
    .option("--pfx-password-stdin", "read the PFX password from standard input")
    .option("--service-fqdn <fqdn>", "cannot change: refused (create a new CMG)")
    .option("--cloud <env>", "cannot change: refused (create a new CMG)")
    .option("--provider <p>", "cannot change: refused (create a new CMG)")
    .option("--region <name>", "cannot change: refused (create a new CMG)")
    .option("--resource-group <name>", "cannot change: refused (create a new CMG)")
    .action(async (name: string, o: Record<string, string | string[] | boolean | undefined>, cmd: Command) => {
      const renewing = o.serverCert !== undefined || o.serverKey !== undefined || o.serverPfx !== undefined;
      const server = renewing
        ? serverCertificateFromFiles({
            cert: fileOpt("serverCert", o.serverCert),
            key: fileOpt("serverKey", o.serverKey),
            pfx: fileOpt("serverPfx", o.serverPfx),
            pfxPassword: o.serverPfx && o.pfxPasswordStdin ? await readStdin(ctx.io.stdin) : undefined,
          })
        : undefined;
      const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? (v as string[]) : undefined);
      await ctx.withSite(cmd, async (s) => {
        const alertChanged = await updateTrafficAlert(s.services.cmgAlerts, name, o);
        const others = Object.keys(o).some((k) => !k.startsWith("traffic") && k !== "stopOnCritical" && o[k] !== undefined);
        if (alertChanged && !others) {
          const c = await s.services.cmgs.show(name);
          return ctx.print(cmd, c, () => `Updated the traffic alert of CMG ${c.name}: ${c.deploy.trafficAlert ? `${c.deploy.trafficAlert.thresholdGb} GB over 14 days, warning at ${c.deploy.trafficAlert.warningPct}%, critical at ${c.deploy.trafficAlert.criticalPct}%${c.deploy.trafficAlert.stopOnCritical ? ", stop on critical" : ""}` : "none"}.\n`);
        }
        const c = await s.services.cmgs.update(name, {
          ...(o.instances !== undefined ? { instances: o.instances as string } : {}),
          ...(o.crlCheck !== undefined ? { crlCheck: o.crlCheck as boolean } : {}),
          ...(o.minRsaBits !== undefined ? { minRsaBits: o.minRsaBits as string } : {}),
          trustedRoots: certFiles("trustedRoot", strings(o.trustedRoot)),
          intermediates: certFiles("intermediate", strings(o.intermediate)),
          addTrustedRoots: certFiles("addTrustedRoot", strings(o.addTrustedRoot)),
          removeTrustedRoots: strings(o.removeTrustedRoot),
          addIntermediates: certFiles("addIntermediate", strings(o.addIntermediate)),
          removeIntermediates: strings(o.removeIntermediate),
          replaceCertificates: o.replaceCertificates === true,
          force: o.force === true,
          ...(server ? { serverCertPem: server.certPem, serverKeyPem: server.keyPem, serverChainPem: server.chainPem } : {}),
          serviceFqdn: o.serviceFqdn as string | undefined,
          cloud: o.cloud as string | undefined,
          provider: o.provider as string | undefined,
          region: o.region as string | undefined,
          resourceGroup: o.resourceGroup as string | undefined,
        });
        const cluster = await followProvider(s, c.name);
        ctx.print(cmd, c, () => `${cluster}Updated CMG ${c.name}; the connection points push the change to its running instances (no restart), and the provider follows the instance count. Status: ${c.status} (${c.statusReason}).\n`);
      });
    });

  cmg
    .command("delete <name>")
    .description("delete a CMG: stop its instances, end the connection points' tunnels, remove its bundle and keys and its connection point roles")
    .option("--force", "delete the last Ready CMG even though clients registered through the internet would have no way in")
    .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await deleteCmg(s.services, name, { force: o.force === true, stopInstances: async (n) => void (await followProvider(s, n)) });
        ctx.print(cmd, r, () => `Deleted CMG ${r.deleted}${r.connectionPointsRemoved.length ? ` and its connection point role on ${r.connectionPointsRemoved.join(", ")}` : ""}; its instances are stopped and its keys removed.\n`);
      });
    });

  cmg
    .command("bundle <name>")
    .description("write the instances' start-up files (certificates, keys, one JSON per instance) for external hosts")
    .requiredOption("--out <dir>", "folder to write")
    .action(async (name: string, o: { out: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const b = await writeCmgBundle(s, await s.services.cmgs.show(name), o.out);
        ctx.print(cmd, b, () => `Wrote ${b.files.length} start-up file(s) to ${b.dir}; run \`opencmg gateway serve --config FILE\` on each host.\n`);
      });
    });
}

/**
 * The traffic alert options of `cmg update` (their own service, cmg-alerts.ts); true when one was
 * given. `--traffic-alert` is on unless `--no-traffic-alert` was given.
 */
async function updateTrafficAlert(alerts: OpenedSite["services"]["cmgAlerts"], name: string, o: Record<string, unknown>): Promise<boolean> {
  const patch = { thresholdGb: o.trafficAlertGb as string | undefined, warningPct: o.trafficWarningPct as string | undefined, criticalPct: o.trafficCriticalPct as string | undefined, stopOnCritical: o.stopOnCritical as boolean | undefined };
  const given = Object.values(patch).some((v) => v !== undefined);
  if (o.trafficAlert === false) {
    if (given) throw new ValidationError("trafficAlert", "--no-traffic-alert removes the alert: give no other traffic alert option with it");
    await alerts.setTrafficAlert(name, null);
    return true;
  }
  if (given) await alerts.setTrafficAlert(name, patch);
  return given;
}

/**
 * `cmg start` and `cmg stop`: the service's run state at the site (it stays as set across
 * restarts), and for a local-provider CMG the process that runs its instances on this machine.
 */
function registerLocalRun(cmg: Command, ctx: CliContext): void {
  cmg
    .command("start <name>")
    .description("start a CMG; a local-provider CMG's instances run here until Ctrl-C (or, when another process runs them already, such as `site serve`, that one starts them)")
    .option("--poll-interval <s>", "how often the site is read for changes (instance count, certificate, stop, delete), seconds", "5")
    .option("--keep-run-state", "run the instances as the site says without starting a stopped CMG (for a service manager that restarts this command)")
    .action(async (name: string, o: { pollInterval: string; keepRunState?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const seconds = Number(o.pollInterval);
      if (!(seconds >= 0.1 && seconds <= 3600)) throw new ValidationError("pollInterval", "must be from 0.1 to 3600 seconds");
      const site = await openSite({ dataDir: g.data, databaseUrl: g.database, work: commandPath(cmd) });
      let running;
      try {
        const view = o.keepRunState ? await site.services.cmgs.show(name) : await site.services.cmgs.start(name);
        const here = localCmgStatus(g.data, view.name);
        if (view.provider !== "local" || here.running) {
          const cluster = await followProvider(site, view.name);
          const who = cluster ? cluster.trim() :  view.provider !== "local" ? "its instances on their hosts get the change from the connection points" : `the process that runs its instances here (${here.pid}) starts them`;
          ctx.print(cmd, view, () => `Started CMG ${view.name}: ${who}. Status: ${view.status} (${view.statusReason}).\n`);
          return;
        }
        running = await startLocalCmg(site, name, {
          dataDir: g.data,
          pollMs: seconds * 1000,
          // A restart or a look at the site goes through a site opened for that alone, waiting at most 2 s for other writers.
          withSite: async (fn) => {
            const s = await openSite({ dataDir: g.data, databaseUrl: g.database, work: `${commandPath(cmd)} (supervisor)`, busyTimeoutMs: 2000 });
            try {
              await fn(s);
            } finally {
              await s.close();
            }
          },
        });
      } finally {
        await site.close();
      }
      try {
        const view = running.view;
        ctx.io.err.write(`CMG ${view.name}: ${view.instances.map((i) => `instance ${i.index} at ${i.clientUrl} (tunnel ${i.tunnelPort})`).join("; ")}; Ctrl-C stops them\n`);
        const deleted = new AbortController();
        void running.done.then(() => deleted.abort());
        const ended = await waitForStop(process.env, deleted.signal);
        if (ended === "aborted") ctx.io.err.write(`CMG ${view.name} was deleted: its instances are stopped and its bundle removed\n`);
      } finally {
        await running.stop();
      }
    });

  cmg
    .command("stop <name>")
    .description("stop a CMG: its instances stop and the connection points end their tunnels; it stays stopped (across restarts) until `cmg start`")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const stopped = await s.services.cmgs.stop(name);
        const cluster = await followProvider(s, stopped.name);
        const view = cluster ? await s.services.cmgs.show(stopped.name) : stopped;
        ctx.print(cmd, view, () => `Stopping CMG ${view.name}: the provider stops its instances and the connection points end their tunnels. Status: ${view.status} (${view.statusReason}).\n`);
      });
    });
}

/** The start-up file's metrics listener with the command line's host and port over it (port 0: none). */
function withMetricsListener(cfg: GatewayInstanceConfig, host: string | undefined, port: number | undefined): GatewayInstanceConfig {
  if (port === 0) return { ...cfg, metrics: null };
  const p = port ?? cfg.metrics?.port;
  if (p === undefined) {
    if (host !== undefined) throw new ValidationError("metricsHost", "needs a metrics port: the start-up file has none; give --metrics-port too");
    return cfg;
  }
  return { ...cfg, metrics: { host: host ?? cfg.metrics?.host ?? DEFAULT_METRICS_HOST, port: p } };
}

/** `--workers`: a whole number from 1 to MAX_WORKERS (default: the host's cores). */
function workersOpt(v: string | undefined): number {
  if (v === undefined || v === "") return Math.min(MAX_WORKERS, availableParallelism());
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1 || n > MAX_WORKERS) throw new ValidationError("workers", `a whole number from 1 to ${MAX_WORKERS}`);
  return n;
}

/** `gateway serve` (one instance) and `connection-point serve` (the role). */
function registerServe(program: Command, ctx: CliContext): void {
  program
    .command("gateway")
    .description("one CMG instance")
    .command("serve")
    .description("run one gateway instance from its start-up file until Ctrl-C")
    .requiredOption("--config <file>", "start-up file (from `opencmg cmg bundle`)")
    .option("--metrics-host <addr>", "address the metrics listener binds (default: the start-up file's, else 127.0.0.1)")
    .option("--metrics-port <n>", "metrics port (default: the start-up file's; 0: none)")
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .option("--workers <n>", `worker processes sharing the client port, each with its own tunnels (default: the host's cores, ${availableParallelism()} here; at most ${MAX_WORKERS})`)
    .action(async (o: { config: string; metricsHost?: string; metricsPort?: string; logLevel: string; logSizeMb: string; workers?: string }, cmd: Command) => {
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      const metricsHost = o.metricsHost === undefined ? undefined : bindHostOpt("metricsHost", o.metricsHost);
      const metricsPort = portOpt("metricsPort", o.metricsPort);
      const workers = workersOpt(o.workers ?? process.env.OPENCMG_GATEWAY_WORKERS);
      const cfg = withMetricsListener(loadStartupFile(o.config), metricsHost, metricsPort);
      const g = ctx.globals(cmd);
      // Every worker writes the instance's log files (cmtrace.ts appends line by line, rotation is shared).
      // The workers re-run this command line, so each rotates at the primary's size: a worker with a
      // smaller one would rotate the shared files early, cutting the others' history short.
      const logs = new LogSet({ dir: join(g.data, "logs"), pino: pino({ level: PINO_LEVEL[logLevel] }), level: logLevel, maxBytes: logSizeBytes });
      const workerIndex = process.env[WORKER_ENV];
      if (cluster.isWorker && workerIndex !== undefined) {
        logFatalFaults(gatewayLogs(logs).service, `Gateway worker ${workerIndex} (pid ${process.pid})`);
        const link = await connectWorker(Number(workerIndex), workers);
        const inst = await startGatewayInstance({ ...cfg, metrics: null }, { log: gatewayLogs(logs), worker: link });
        // The primary says when to stop (or goes away); SIGTERM to the whole unit stops it too. Ctrl-C is the primary's.
        process.on("SIGINT", () => undefined);
        const cause = await new Promise<string>((resolve) => {
          link.onStop(() => resolve("primary"));
          process.once("SIGTERM", () => resolve("SIGTERM"));
        });
        await inst.stop();
        logs.close();
        ctx.io.err.write(`gateway ${inst.instanceName} worker ${link.index} stopped (${cause})\n`);
        process.exit(0);
      }
      if (workers > 1) {
        const resolved = resolveGatewayConfig(cfg);
        const serviceLog = gatewayLogs(logs).service;
        logFatalFaults(serviceLog, `Gateway instance ${resolved.instanceName} primary (pid ${process.pid})`);
        const sup = await superviseWorkers(resolved, workers, serviceLog, (line) => ctx.io.err.write(`gateway ${resolved.instanceName} ${line}\n`));
        const stopped = waitForStop();
        ctx.io.err.write(
          `gateway ${resolved.instanceName} listening: clients on ${cfg.client.host}:${sup.clientPort}, tunnels on ${cfg.tunnel.host}:${sup.tunnelPorts.join(",")}` +
            `${sup.metricsPort ? `, metrics on ${cfg.metrics?.host ?? DEFAULT_METRICS_HOST}:${sup.metricsPort}` : ""}; ${workers} workers (pids ${sup.pids().join(",")})\n`,
        );
        const cause = await stopped;
        await sup.stop();
        logs.close();
        ctx.io.err.write(`gateway ${resolved.instanceName} stopped (${cause})\n`);
        return;
      }
      logFatalFaults(gatewayLogs(logs).service, `Gateway instance (pid ${process.pid})`);
      const inst = await startGatewayInstance(cfg, { log: gatewayLogs(logs) });
      const stopped = waitForStop(); // before the line that says it listens: a stop may follow at once
      ctx.io.err.write(`gateway ${inst.instanceName} listening: clients on ${cfg.client.host}:${inst.clientPort}, tunnels on ${cfg.tunnel.host}:${inst.tunnelPort}${inst.metricsPort ? `, metrics on ${cfg.metrics?.host ?? DEFAULT_METRICS_HOST}:${inst.metricsPort}` : ""}\n`);
      const cause = await stopped;
      await inst.stop();
      logs.close();
      ctx.io.err.write(`gateway ${inst.instanceName} stopped (${cause})\n`);
    });

  const cp = program.command("connection-point").description("the CMG connection point role");
  registerConnectionPointCertCommands(cp, ctx);
  cp.command("serve")
    .description("run the CMG connection point of a server until Ctrl-C (on a joined server: from the site over mutually authenticated TLS, no database)")
    .option("--server <fqdn>", "the site system server hosting the role (default on a joined server: the one that joined)")
    .option("--report-interval <s>", "health report interval, seconds", "60")
    .option("--metrics-port <n>", "Prometheus metrics on this port (default: none)")
    .option("--metrics-host <addr>", "address the metrics listener binds", DEFAULT_METRICS_HOST)
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .option("--poll-interval <s>", "how often the site is read for changes (CMG settings, instances, roles), seconds", "10")
    .action(async (o: { server?: string; reportInterval: string; metricsPort?: string; metricsHost: string; logLevel: string; logSizeMb: string; pollInterval: string }, cmd: Command) => {
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      const metricsHost = bindHostOpt("metricsHost", o.metricsHost);
      const metricsPort = portOpt("metricsPort", o.metricsPort);
      const seconds = Number(o.reportInterval);
      if (!(seconds >= 1)) throw new ValidationError("reportInterval", "must be at least 1 second");
      const poll = Number(o.pollInterval);
      if (!(poll >= 0.1 && poll <= 3600)) throw new ValidationError("pollInterval", "must be from 0.1 to 3600 seconds");
      const g = ctx.globals(cmd);
      const opts = { healthIntervalMs: seconds * 1000, pollMs: poll * 1000, ...(metricsPort ? { metricsPort, metricsHost } : {}) };
      const { isJoined, JoinedHost } = await import("../../join/client.ts");
      let running: Awaited<ReturnType<typeof runConnectionPointRole>>;
      let close: () => Promise<void>;
      let server: string;
      if (isJoined(g.data)) {
        // A joined server: everything comes from the site over mTLS; no database is opened.
        if (g.database) throw new ValidationError("database", "a joined server reads the site over its join, not from the database: leave --database out");
        const host = new JoinedHost(g.data);
        if (o.server !== undefined && o.server.toLowerCase() !== host.server) throw new ValidationError("server", `this data folder joined the site as ${host.server}, not ${o.server}`);
        server = host.server;
        const logs = new LogSet({ dir: join(g.data, "logs"), pino: pino({ level: PINO_LEVEL[logLevel] }), level: logLevel, maxBytes: logSizeBytes });
        logFatalFaults(logs.component(LOG_FILES.cloudProxyConnector), `Connection point on ${server} (pid ${process.pid})`);
        const { joinedConnectionPointDeps } = await import("../../roles/cmg-connection-point/joined.ts");
        const deps = joinedConnectionPointDeps(host, logs);
        running = await runConnectionPointRole(deps, server, opts);
        close = async () => {
          await deps.egress.close();
          await host.close();
          logs.close();
        };
      } else {
        if (o.server === undefined) throw new ValidationError("server", "is required (the site system server hosting the role), unless this data folder holds a joined server");
        server = o.server;
        const site = await openSite({ dataDir: g.data, databaseUrl: g.database, work: commandPath(cmd), pino: pino({ level: PINO_LEVEL[logLevel] }), logLevel, logSizeBytes });
        logFatalFaults(site.logs.component(LOG_FILES.cloudProxyConnector), `Connection point on ${server} (pid ${process.pid})`);
        running = await runConnectionPointRole(connectionPointRoleDeps(site), server, opts);
        close = () => site.close();
      }
      const stopped = waitForStop(); // before the line that says it runs: a stop may follow at once
      ctx.io.err.write(`connection point on ${server} dialling every instance of CMG ${running.cmg}; Ctrl-C stops it\n`);
      const cause = await stopped;
      await running.stop();
      await close();
      ctx.io.err.write(`connection point on ${server} stopped (${cause})\n`);
    });
}
