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
    const base = 20000 + Math.floor(Math.random() * 40000);
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
