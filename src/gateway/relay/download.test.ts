// A large download streams through client -> instance -> tunnel -> connection point -> backend
// without ever sitting in memory. Everything runs in this process, so its RSS bounds every hop at
// once: if any hop buffered the body, RSS would grow by about the size of the body.
import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, type CmgHarness } from "../../../test/helpers/cmg-harness.ts";

const SIZE = 256 * 1024 * 1024;
/** Allowed RSS growth: well under the body size (buffer pools, TLS and HTTP/2 windows, GC lag). */
const BOUND = 96 * 1024 * 1024;

describe("large streamed download", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, connectionsPerInstance: 1 });
    await h.waitReady();
    // Warm up every hop (pools, TLS sessions, JIT) so the baseline is not the first allocation.
    for (const h2 of [false, true]) await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/bytes/${8 * 1024 * 1024}`, { cert: h.pki.client, h2 });
  });
  after(() => h.close());

  for (const proto of ["h2", "http/1.1"] as const) {
    it(`streams ${SIZE / 1024 / 1024} MiB over ${proto} with bounded memory`, async (t) => {
      const path = `/CCM_Proxy_MutualAuth/${h.roles.sup}/bytes/${SIZE}`;
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      let received = 0;
      let nextSample = 0;
      const onData = (c: Buffer): void => {
        received += c.length;
        if (received >= nextSample) {
          peak = Math.max(peak, process.memoryUsage().rss);
          nextSample += 4 * 1024 * 1024;
        }
      };
      await new Promise<void>((resolve, reject) => {
        const opts = { ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem };
        if (proto === "h2") {
          const s = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, opts);
          s.on("error", reject);
          const st = s.request({ ":path": path });
          st.on("response", (hd) => assert.equal(hd[":status"], 200));
          st.on("data", onData);
          st.on("error", reject);
          st.on("end", () => {
            s.close();
            resolve();
          });
        } else {
          https
            .get({ host: "127.0.0.1", port: h.ports[0]!.client, path, agent: false, ...opts }, (res) => {
              assert.equal(res.statusCode, 200);
              res.on("data", onData);
              res.on("error", reject);
              res.on("aborted", () => reject(new Error("aborted")));
              res.on("end", () => resolve());
            })
            .on("error", reject);
        }
      });
      assert.equal(received, SIZE);
      const growth = peak - baseline;
      t.diagnostic(`RSS growth over ${proto}: ${(growth / 1048576).toFixed(1)} MiB`);
      assert.ok(growth < BOUND, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB while streaming ${SIZE / 1048576} MiB (bound ${BOUND / 1048576} MiB)`);
    });
  }
});
