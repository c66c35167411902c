import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";

/** A TCP port that was free on 127.0.0.1 a moment ago (for servers that cannot take port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Where freePortRange looks: from 20000 up to the start of the kernel's ephemeral range (Linux:
 * 32768), so no outgoing connection on the machine (a browser, a CLI run, another developer's
 * test) takes a port between the check and the listen; 20000-60000 where that range is unknown.
 */
function listenPortWindow(): { low: number; high: number } {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 21000) return { low: 20000, high: first };
  } catch {
    // Not Linux: the wide window.
  }
  return { low: 20000, high: 60000 };
}

/** `n` consecutive TCP ports that were free on 127.0.0.1 a moment ago (instance i uses base + i). */
export async function freePortRange(n: number): Promise<number> {
  const { createServer: create } = await import("node:net");
  const tryBind = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const s = create();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const { low, high } = listenPortWindow();
    const base = low + Math.floor(Math.random() * (high - low - n));
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await tryBind(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

/** True once something accepts a TCP connection on 127.0.0.1:port (a listener is up), else false. */
export function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
