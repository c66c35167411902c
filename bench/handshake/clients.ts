/**
 * The TLS clients of bench/handshake.ts, in their own process so the gateway side's CPU time is
 * the gateway's alone. `clients.ts` then IPC: {type:"run", port, ca, ids:[{certPem,keyPem}], conc}
 * -> one new TLS connection per identity (no session reuse), one HTTP/1.1 GET each, bounded
 * concurrency; replies {type:"done", ok, refused, failed, ms}. {type:"exit"} ends it.
 */
import { request } from "node:https";
import { TLS_POLICY } from "../../src/pki/tls-policy.ts";

interface Run {
  type: "run";
  port: number;
  ca: string;
  ids: { certPem: string; keyPem: string }[];
  conc: number;
}

function once(port: number, ca: string, id: { certPem: string; keyPem: string }): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/", servername: "cmg.opencmg.test", ca, cert: id.certPem, key: id.keyPem, agent: false, timeout: 60_000, ...TLS_POLICY },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(0));
    req.end();
  });
}

process.on("message", async (m: Run | { type: "exit" }) => {
  if (m.type === "exit") process.exit(0);
  const t0 = performance.now();
  let next = 0;
  const counts = { ok: 0, refused: 0, failed: 0 };
  const worker = async (): Promise<void> => {
    while (next < m.ids.length) {
      const status = await once(m.port, m.ca, m.ids[next++]!);
      if (status === 200) counts.ok++;
      else if (status === 403) counts.refused++;
      else counts.failed++;
    }
  };
  await Promise.all(Array.from({ length: m.conc }, worker));
  process.send!({ type: "done", ...counts, ms: performance.now() - t0 });
});
process.send!({ type: "ready" });
