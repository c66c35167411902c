/**
 * The gateway container image (deploy/container/build.sh), built once for this file: it carries
 * the release, runs as its own user, and a gateway instance in it serves a device. The instance
 * runs in a container of the image (buildah, chroot isolation, the host's network, loopback
 * ports) from the start-up bundle `opencmg cmg bundle` wrote; the site, the connection point and
 * the management point stand-in run outside it, as in the other e2e tests.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chownSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { startBackend, type TestBackend } from "../../helpers/cmg-backend.ts";
import { requestH1 } from "../../helpers/cmg-requests.ts";
import { runCli } from "../../helpers/cli.ts";
import { buildGatewayImage, type GatewayImage, type Started } from "../../helpers/container-image.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePort } from "../../helpers/ports.ts";
import { childrenOf } from "../../helpers/proc.ts";
import { until } from "../../helpers/until.ts";
import { VERSION } from "../../../src/version.ts";

const root = tempDir("opencmg-image-");
const data = join(root, "site");
const bundle = join(root, "bundle");
let image: GatewayImage;
let pki: TestPki;
let backend: TestBackend;
let mpRole: string;
let gateway: Started | undefined;
let cp: ChildProcess | undefined;
let cpOut = "";
const ports = { client: 0, tunnel: 0, metrics: 0 };

async function opencmg(args: string[]): Promise<string> {
  const r = await runCli(["--data", data, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}
const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));

before(async () => {
  image = buildGatewayImage();
  pki = await makeTestPki();
  backend = await startBackend();
  await opencmg(["site", "init"]);
  await opencmg(["server", "add", "mp01.contoso.test"]);
  await opencmg(["server", "add", "cp01.contoso.test"]);
  mpRole = String((JSON.parse(await opencmg(["role", "add", "mp01.contoso.test", "management-point", "--allow-cmg-traffic", "--internal-url", backend.url, "--json"])) as { id: number }).id);
});

after(async () => {
  if (cp && cp.exitCode === null) {
    const exited = new Promise((r) => cp!.once("exit", r));
    cp.kill("SIGTERM");
    await exited;
  }
  await image?.remove();
  await backend?.close();
  rmSync(root, { recursive: true, force: true });
});

it("the image carries the release: opencmg --version in a container of it", () => {
  const r = image.run(["--version"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

it("holds no database driver, no npm and no compiler, and runs as a user of its own", () => {
  const probe = shell(["sh", "-c", "id -u; id -g; ls /opt/opencmg/node_modules; command -v npm gcc cc make apt-get || true"]);
  const [uid, gid, ...rest] = probe.split("\n");
  assert.equal(uid, "10001");
  assert.equal(gid, "10001");
  const listing = rest.join("\n");
  assert.match(listing, /^opencmg$/m);
  for (const absent of ["better-sqlite3", "pg", "typescript", "esbuild", "tsx"]) assert.doesNotMatch(listing, new RegExp(`^${absent}$`, "m"), `${absent} is not in the image`);
  assert.doesNotMatch(listing, /\/(npm|gcc|cc|make|apt-get)$/m, "no npm, compiler or package manager on the PATH");
});

it("a gateway instance in the image serves a device through the connection point outside it", async () => {
  for (let attempt = 1; ; attempt++) {
    ports.client = await freePort();
    ports.tunnel = await freePort();
    ports.metrics = await freePort();
    await opencmg(["cmg", "create", "cmg1", "--server-cert", file("server.pem", pki.server.certPem), "--server-key", file("server.key", pki.server.keyPem), "--trusted-root", file("root.pem", pki.root.certPem),
      "--intermediate", file("sub.pem", pki.intermediate.certPem), "--no-crl-check", "--provider", "external", "--listen-host", "127.0.0.1", "--public-host", "127.0.0.1", "--instance-host", "127.0.0.1",
      "--client-port", String(ports.client), "--tunnel-port", String(ports.tunnel), "--metrics-port", String(ports.metrics)]);
    await opencmg(["cmg", "bundle", "cmg1", "--out", bundle]);
    // As a Secret mounted for the pod's group: the instance's user reads its keys.
    for (const f of ["", ...readdirSync(bundle)]) chownSync(join(bundle, f), 10001, 10001);
    gateway = image.start(["gateway", "serve", "--config", "/etc/opencmg/bundle/instance-0.json"], { volumes: { [bundle]: "/etc/opencmg/bundle" } });
    await until("the instance in the container to listen or exit", () => /listening/.test(gateway!.out()) || gateway!.child.exitCode !== null, 120_000);
    if (gateway.child.exitCode === null) break;
    if (!/EADDRINUSE/.test(gateway.out()) || attempt === 5) assert.fail(`gateway serve in the container exited: ${gateway.out()}`);
    await opencmg(["cmg", "delete", "cmg1"]);
    rmSync(bundle, { recursive: true, force: true });
  }
  assert.match(gateway.out(), new RegExp(`clients on 127\\.0\\.0\\.1:${ports.client}, tunnels on 127\\.0\\.0\\.1:${ports.tunnel}`));
  // The instance's process is the image's user, not root.
  const node = until("the instance's node process", () => descendants(gateway!.child.pid!).find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").includes("gateway\0serve")));
  const status = readFileSync(`/proc/${await node}/status`, "utf8");
  assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);

  await opencmg(["role", "add", "cp01.contoso.test", "cmg-connection-point", "--cmg", "cmg1"]);
  cp = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "connection-point", "serve", "--server", "cp01.contoso.test", "--report-interval", "1", "--poll-interval", "1"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENCMG_DATA: "" } });
  cp.stdout!.setEncoding("utf8").on("data", (d: string) => (cpOut += d));
  cp.stderr!.setEncoding("utf8").on("data", (d: string) => (cpOut += d));
  await until("the CMG to be Ready", async () => {
    if (cp!.exitCode !== null) assert.fail(`connection point exited: ${cpOut}`);
    return (JSON.parse(await opencmg(["cmg", "show", "cmg1", "--json"])) as { status: string }).status === "Ready";
  });
  // The CMG is Ready once the connection point has a tunnel to the instance; the instance's probe
  // answers 200 once every one of its workers has its own, which can follow by a moment.
  await until("the probe's endpoint to say the instance has its tunnels (every worker)", async () => (await fetch(`http://127.0.0.1:${ports.metrics}/healthz`)).status === 200);

  const r = await requestH1(ports.client, `/CCM_Proxy_MutualAuth/${mpRole}/SMS_MP/.sms_aut?MPLIST`, pki.root.certPem, { cert: pki.client });
  assert.equal(r.status, 200, r.body.toString());
  assert.ok(backend.requests.some((q) => q.url.includes("/SMS_MP/.sms_aut?MPLIST")), "the management point got the device's request");
});

/** Every process below `pid`. */
function descendants(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
}

/** A command in a container of the image, as its user: its output. */
function shell(cmd: string[]): string {
  const r = image.exec(cmd);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}
