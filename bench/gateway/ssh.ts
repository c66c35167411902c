/**
 * Row H of bench/gateway.ts: the reverse tunnel an administrator would build by hand with OpenSSH.
 * A private sshd (its own config, host key and authorized key in a temp folder, loopback only)
 * stands for the Internet-facing host; `ssh -N -R` from the "on-premises" side forwards a port on
 * it to the backend. nginx (bench/gateway/nginx.ts) takes the devices' mutual TLS in front of the
 * forwarded port. Needs root (or the same user) for sshd and its privilege separation folder.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/helpers/ports.ts";
import { Child, listening, run, waitUntil } from "../lib/child.ts";

export interface SshTunnel {
  /** The forwarded port on the sshd side (127.0.0.1). */
  port: number;
  sshd: Child;
  ssh: Child;
  stop(): Promise<void>;
}

export async function startSshTunnel(backendPort: number): Promise<SshTunnel> {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-ssh-"));
  const [sshdPort, port] = [await freePort(), await freePort()];
  const children: Child[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children.reverse()) await c.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const k of ["host_key", "client_key"]) await run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "opencmg-bench", "-f", join(dir, k)]);
    writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")), { mode: 0o600 });
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege separation folder
    writeFileSync(
      join(dir, "sshd_config"),
      `ListenAddress 127.0.0.1
Port ${sshdPort}
HostKey ${dir}/host_key
PidFile ${dir}/sshd.pid
AuthorizedKeysFile ${dir}/authorized_keys
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
LogLevel INFO
`,
    );
    const sshd = Child.start("/usr/sbin/sshd", ["-f", join(dir, "sshd_config"), "-D", "-e"], { name: "sshd", stdout: "ignore", stderr: "pipe" });
    children.push(sshd);
    await sshd.waitForLine(/Server listening on 127\.0\.0\.1 port/, { stream: "stderr", timeoutMs: 10_000 });
    const ssh = Child.start(
      "/usr/bin/ssh",
      [
        "-F", "/dev/null", "-N", "-T",
        "-i", join(dir, "client_key"), "-p", String(sshdPort),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "ExitOnForwardFailure=yes",
        "-R", `127.0.0.1:${port}:127.0.0.1:${backendPort}`,
        `${userInfo().username}@127.0.0.1`,
      ],
      { name: "ssh -R", stdout: "ignore", stderr: "pipe" },
    );
    children.push(ssh);
    await waitUntil("the ssh -R forwarded port", async () => {
      if (!ssh.alive) throw new Error(`ssh exited: ${ssh.stderrTail()}\nsshd: ${sshd.stderrTail()}`);
      return listening(port);
    }, 10_000);
    return { port, sshd, ssh, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
