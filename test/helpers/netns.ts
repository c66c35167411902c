/**
 * Hosts on one machine, each a Linux network namespace of its own: a "network" namespace holds a
 * bridge (and the address .1, where a DNS server may run), every host namespace is joined to it by
 * a veth pair and has one address in a private /24. Namespace names carry this process's ID and a
 * random part, so two suites at once do not clash; `destroy` removes every namespace, veth and
 * /etc/netns/NAME folder it made (the veths go with their namespaces). Needs root and iproute2.
 *
 * Processes run in a host with `ip netns exec`, which bind-mounts /etc/netns/NAME/resolv.conf over
 * /etc/resolv.conf for them: each host resolves names through the nameserver given to `createLab`.
 *
 *   const lab = createLab(["site", "dev"], { nameserver: true });
 *   const child = lab.spawn("dev", "getent", ["hosts", "site.test"]);
 *   lab.destroy();
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";

export interface LabHost {
  /** The namespace's name (`ip netns exec NAME`). */
  ns: string;
  address: string;
}

export interface Lab {
  /** The /24's first three parts, e.g. `10.231.17`. */
  subnet: string;
  /** The network namespace: the bridge, and the address `${subnet}.1`. */
  net: LabHost;
  hosts: Record<string, LabHost>;
  /** Starts `cmd args` inside host `name` (or "net"). */
  spawn(name: string, cmd: string, args: string[], o?: SpawnOptions): ChildProcess;
  /** Runs `cmd args` inside host `name` to its end; throws with its standard error when it fails. */
  run(name: string, cmd: string, args: string[], input?: string): string;
  /** The IDs of every process in host `name`'s namespace. */
  pids(name: string): number[];
  /** Kills every process, removes every namespace and /etc/netns folder this lab made. Safe to call twice. */
  destroy(): void;
}

const ip = (args: string[]): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/**
 * Makes the namespaces: hosts get `${subnet}.2`, `.3`, ... in the order named, unless
 * `addresses` gives a host's last part. `nameserver`: each host's resolv.conf names `${subnet}.1`.
 */
export function createLab(names: readonly string[], o: { nameserver?: boolean; lastParts?: Record<string, number> } = {}): Lab {
  const id = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
  // 10.231.0.0/16, one /24 per run (namespaces keep runs apart anyway; this only keeps captures readable).
  const subnet = `10.231.${(process.pid + randomBytes(1)[0]!) % 250}`;
  const made: string[] = [];
  const etc: string[] = [];
  const nsOf = (name: string): string => `ocha-${id}-${name}`;
  const net: LabHost = { ns: nsOf("net"), address: `${subnet}.1` };
  const hosts: Record<string, LabHost> = {};
  let destroyed = false;
  const lab: Lab = {
    subnet,
    net,
    hosts,
    spawn(name, cmd, args, so = {}) {
      return spawn("ip", ["netns", "exec", hostOf(name).ns, cmd, ...args], so);
    },
    run(name, cmd, args, input) {
      try {
        return execFileSync("ip", ["netns", "exec", hostOf(name).ns, cmd, ...args], { encoding: "utf8", input: input ?? "", stdio: ["pipe", "pipe", "pipe"], maxBuffer: 64 << 20 });
      } catch (e) {
        const x = e as { status?: number; stderr?: string; stdout?: string };
        throw new Error(`${cmd} ${args.join(" ")} in ${name} exited ${x.status}: ${x.stderr ?? ""}${x.stdout ?? ""}`);
      }
    },
    pids(name) {
      return ip(["netns", "pids", hostOf(name).ns])
        .split(/\s+/)
        .filter((p) => /^\d+$/.test(p))
        .map(Number);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const ns of made) {
        // Only processes inside the namespaces this lab made.
        for (const pid of safePids(ns)) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
      }
      for (const ns of [...made].reverse()) {
        try {
          ip(["netns", "del", ns]);
        } catch {
          // not made, or already removed
        }
      }
      for (const d of etc) rmSync(d, { recursive: true, force: true });
      try {
        // Made by the first lab when absent; another suite's folders keep it.
        if (etc.length > 0) rmdirSync("/etc/netns");
      } catch {
        // not empty
      }
    },
  };
  function hostOf(name: string): LabHost {
    const h = name === "net" ? net : hosts[name];
    if (!h) throw new Error(`no host ${name} in this lab`);
    return h;
  }
  // Also when the test process ends without reaching its `after` (an uncaught error, process.exit).
  process.once("exit", () => lab.destroy());
  try {
    ip(["netns", "add", net.ns]);
    made.push(net.ns);
    ip(["-n", net.ns, "link", "set", "lo", "up"]);
    ip(["-n", net.ns, "link", "add", "br0", "type", "bridge"]);
    ip(["-n", net.ns, "addr", "add", `${net.address}/24`, "dev", "br0"]);
    ip(["-n", net.ns, "link", "set", "br0", "up"]);
    names.forEach((name, i) => {
      const h: LabHost = { ns: nsOf(name), address: `${subnet}.${o.lastParts?.[name] ?? i + 2}` };
      ip(["netns", "add", h.ns]);
      made.push(h.ns);
      hosts[name] = h;
      // The pair is made in the network namespace: no name is ever taken in this machine's own.
      const port = `v${i}`;
      ip(["-n", net.ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns]);
      ip(["-n", net.ns, "link", "set", port, "master", "br0"]);
      ip(["-n", net.ns, "link", "set", port, "up"]);
      ip(["-n", h.ns, "link", "set", "lo", "up"]);
      ip(["-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0"]);
      ip(["-n", h.ns, "link", "set", "eth0", "up"]);
      if (o.nameserver) {
        const dir = `/etc/netns/${h.ns}`;
        mkdirSync(dir, { recursive: true });
        etc.push(dir);
        writeFileSync(`${dir}/resolv.conf`, `nameserver ${net.address}\noptions timeout:2 attempts:3\n`);
      }
    });
  } catch (e) {
    lab.destroy();
    throw e;
  }
  return lab;
}

function safePids(ns: string): number[] {
  try {
    return ip(["netns", "pids", ns])
      .split(/\s+/)
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
  } catch {
    return [];
  }
}
