/**
 * The systemd units in deploy/systemd/ run commands `opencmg` knows: each unit's ExecStart, with
 * its Environment= defaults and a sample instance name filled in, parses (every option exists)
 * and reaches the command's own checks. A deliberately wrong log level proves it: only a command
 * line whose every option parsed gets as far as `logLevel: must be one of ...`; a wrong log size
 * likewise proves the unit passes its OPENCMG_LOG_SIZE_MB to `--log-size-mb`. And systemd's own
 * checker, `systemd-analyze verify` (it runs without systemd as PID 1), accepts each unit without
 * a warning: an unknown key or value is only a warning to it, so its output must be empty too.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { tempDir } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";

const UNITS = join(import.meta.dirname, "..", "..", "..", "deploy", "systemd");

/** The unit's [Service] key=value lines (a key may repeat). */
function serviceKeys(unit: string): [string, string][] {
  const text = readFileSync(join(UNITS, unit), "utf8");
  return text
    .split("\n")
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]);
}

/** ExecStart's arguments after `node /opt/opencmg/bin/opencmg.mjs`, with ${VAR} from Environment= and %i replaced. */
function commandLine(unit: string, instance: string, override: Record<string, string>): string[] {
  const keys = serviceKeys(unit);
  const env: Record<string, string> = {};
  for (const [k, v] of keys) if (k === "Environment") for (const pair of v.split(/\s+/)) env[pair.slice(0, pair.indexOf("="))] = pair.slice(pair.indexOf("=") + 1).replaceAll("%i", instance);
  Object.assign(env, override);
  const exec = keys.find(([k]) => k === "ExecStart")![1].split(/\s+/);
  assert.deepEqual(exec.slice(0, 2), ["/usr/bin/node", "/opt/opencmg/bin/opencmg.mjs"]);
  return exec.slice(2).map((a) => a.replaceAll("%i", instance).replace(/\$\{(\w+)\}/g, (_, k: string) => {
    assert.ok(k in env, `${unit}: \${${k}} has no default in Environment=`);
    return env[k]!;
  }));
}

const units: [string, string, string][] = [
  ["opencmg-site.service", "", "site serve"],
  ["opencmg-connection-point@.service", "cp01.contoso.com", "connection-point serve"],
  ["opencmg-gateway@.service", "0", "gateway serve"],
  ["opencmg-mp@.service", "mp01.contoso.com", "mp serve"],
  ["opencmg-sup@.service", "sup01.contoso.com", "sup serve"],
];

/** systemd-analyze, when installed (Debian's systemd package has it). */
const analyze = (() => {
  try {
    execFileSync("systemd-analyze", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

for (const [unit, instance, command] of units) {
  it(`${unit} runs \`opencmg ${command}\` with options it knows`, async () => {
    const args = commandLine(unit, instance, { OPENCMG_LOG_LEVEL: "loud" });
    assert.equal(args.slice(0, 2).join(" "), command);
    const r = await runCli(["--data", join(tempDir("opencmg-unit-"), "data"), ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /logLevel: must be one of info, warning, error \(got "loud"\)/);
    assert.doesNotMatch(r.stderr, /unknown option/);
  });

  it(`${unit} passes OPENCMG_LOG_SIZE_MB (default 2.5) to \`--log-size-mb\``, async () => {
    assert.match(new Map(serviceKeys(unit)).get("Environment") ?? "", /(^|\s)OPENCMG_LOG_SIZE_MB=2\.5(\s|$)/);
    const args = commandLine(unit, instance, { OPENCMG_LOG_SIZE_MB: "0" });
    const r = await runCli(["--data", join(tempDir("opencmg-unit-"), "data"), ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /logSizeMb: must be a number of megabytes from 1 to 1024 \(got "0"\)/);
  });

  it(`${unit} passes \`systemd-analyze verify\` with no warning`, { skip: analyze ? false : "systemd-analyze is not installed" }, () => {
    // A template is verified as one of its instances (the name is what systemd would load).
    const file = join(tempDir("opencmg-verify-"), unit.replace("@.", `@${instance}.`));
    copyFileSync(join(UNITS, unit), file);
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", env: { ...process.env, SYSTEMD_LOG_COLOR: "0" } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((r.stdout + r.stderr).trim(), "", "no warning");
  });

  it(`${unit} is hardened: strict file system, the data folder writable, no new privileges, restarts on failure`, () => {
    const keys = new Map(serviceKeys(unit));
    assert.equal(keys.get("ProtectSystem"), "strict");
    assert.equal(keys.get("NoNewPrivileges"), "yes");
    assert.equal(keys.get("Restart"), "on-failure");
    assert.match(keys.get("LimitNOFILE") ?? "", /^\d+$/);
    const data = /OPENCMG_DATA=(\S+)/.exec(keys.get("Environment") ?? "")![1]!;
    assert.equal(keys.get("ReadWritePaths"), data, "the data folder, and only it, is writable");
    assert.equal(keys.get("User"), "opencmg");
    assert.equal(keys.get("UMask"), "0077");
  });
}
