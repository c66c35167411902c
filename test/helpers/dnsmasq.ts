/**
 * A real DNS server for a lab (test/helpers/netns.ts): Debian's dnsmasq, in the foreground, inside
 * one namespace, answering only the records given (no upstream, no /etc/hosts). A name given
 * several addresses gets one A record per address, as a CMG's service name with one per instance.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import type { Lab } from "./netns.ts";
import { until } from "./until.ts";

export const DNSMASQ = "/usr/sbin/dnsmasq";

export interface Dns {
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Starts dnsmasq in `host` of `lab`, listening on `address`:53; resolves once a name resolves from `probeFrom`. */
export async function startDns(lab: Lab, host: string, address: string, records: Record<string, string[]>, probeFrom: string): Promise<Dns> {
  const recordArgs = Object.entries(records).flatMap(([name, addrs]) => addrs.map((a) => `--host-record=${name},${a}`));
  const child = lab.spawn(host, DNSMASQ, ["--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", `--listen-address=${address}`, "--bind-interfaces", "--port=53", "--pid-file=", "--user=root", "--log-facility=-", ...recordArgs], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out = (out + d).slice(-20_000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const [name, addrs] = Object.entries(records)[0]!;
  await until(`dnsmasq to answer for ${name}`, () => {
    if (child.exitCode !== null) assert.fail(`dnsmasq exited ${child.exitCode}: ${out}`);
    try {
      const got = lab.run(probeFrom, "getent", ["ahostsv4", name]);
      return addrs.every((a) => got.includes(a));
    } catch {
      return false;
    }
  });
  return {
    child,
    log: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
