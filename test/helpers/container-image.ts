/**
 * The gateway container image for tests: built once per test file by deploy/container/build.sh
 * (a tag of this process's own), run with buildah (chroot isolation, the host's network: no
 * cgroups needed), and removed with every container made from it.
 *
 *   const image = await buildGatewayImage();
 *   const r = image.run(["--version"]);
 *   const p = image.start(["gateway", "serve", "--config", "/etc/opencmg/bundle/instance-0.json"], { volumes: { [dir]: "/etc/opencmg/bundle" } });
 *   await image.remove();
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childrenOf } from "./proc.ts";

const ROOT = join(import.meta.dirname, "..", "..");

/** npm without what an npm that started the tests passes down about its own project and command. */
const NPM_OWN = /^npm_(lifecycle_|package_|command$|execpath$|node_execpath$|config_(local_prefix|global_prefix|prefix|global|omit|include|only|production|dev|ignore_scripts|save|package_lock|workspaces?)$)/i;

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  out(): string;
  exit: Promise<number | null>;
}

export interface GatewayImage {
  tag: string;
  id: string;
  /** A command in a new container of the image, to its end (the entrypoint is `opencmg`: `args` are its arguments). */
  run(args: string[], o?: { volumes?: Record<string, string> }): Ran;
  /** Any command in a new container of the image (not through the entrypoint), to its end. */
  exec(cmd: string[]): Ran;
  /** A long-running `opencmg ARGS` in a new container (host network). */
  start(args: string[], o?: { volumes?: Record<string, string> }): Started;
  /** Stops what runs, removes the containers and the image. */
  remove(): Promise<void>;
}

/** Builds the image with deploy/container/build.sh (dist/ must be built: e2e tests run after the build). */
export function buildGatewayImage(): GatewayImage {
  const work = mkdtempSync(join(tmpdir(), "opencmg-image-test-"));
  writeFileSync(join(work, "containers.conf"), "[containers]\ndefault_ulimits = []\n");
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !NPM_OWN.test(k))), CONTAINERS_CONF: join(work, "containers.conf"), BUILDAH_ISOLATION: "chroot" };
  const tag = `localhost/opencmg-gateway:test-${process.pid}`;
  const b = spawnSync("bash", [join(ROOT, "deploy", "container", "build.sh"), "--tag", tag], { cwd: ROOT, env, encoding: "utf8", timeout: 20 * 60_000 });
  if (b.status !== 0) rmSync(work, { recursive: true, force: true });
  if (b.status !== 0) throw new Error(`build.sh exited ${b.status ?? b.signal}:\n${b.stdout}\n${b.stderr}`);
  const id = b.stdout.trim().split("\n").at(-1)!;

  const containers: string[] = [];
  const started: Started[] = [];
  const buildah = (args: string[]): Ran => {
    const r = spawnSync("buildah", args, { env, encoding: "utf8", timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const container = (): string => {
    const name = `opencmg-test-${process.pid}-${containers.length}`;
    const r = buildah(["from", "--isolation", "chroot", "--name", name, tag]);
    if (r.status !== 0) throw new Error(`buildah from: ${r.stderr}`);
    containers.push(name);
    return name;
  };
  const runArgs = (name: string, args: string[], volumes: Record<string, string> = {}): string[] => [
    "run",
    "--isolation",
    "chroot",
    "--network",
    "host",
    ...Object.entries(volumes).flatMap(([host, inside]) => ["--volume", `${host}:${inside}:ro`]),
    name,
    "--",
    ...args,
  ];
  /** Every process below `pid`, deepest first. */
  const tree = (pid: number): number[] => childrenOf(pid).flatMap((c) => [...tree(c), c]);

  return {
    tag,
    id,
    run(args, o = {}) {
      return buildah(runArgs(container(), ["/usr/local/bin/opencmg", ...args], o.volumes));
    },
    exec(cmd) {
      return buildah(runArgs(container(), cmd));
    },
    start(args, o = {}) {
      const child = spawn("buildah", runArgs(container(), ["/usr/local/bin/opencmg", ...args], o.volumes), { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
      const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      const s = { child, out: () => out, exit };
      started.push(s);
      return s;
    },
    async remove() {
      for (const s of started) {
        if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
        // The command in the container first (SIGTERM: it drains and exits), then buildah.
        for (const pid of tree(s.child.pid!)) {
          try {
            process.kill(pid, "SIGTERM");
          } catch {
            // gone meanwhile
          }
        }
        const t = setTimeout(() => s.child.kill("SIGKILL"), 15_000);
        await s.exit;
        clearTimeout(t);
      }
      for (const name of containers) buildah(["rm", name]);
      buildah(["rmi", "--force", tag]);
      rmSync(work, { recursive: true, force: true });
    },
  };
}
