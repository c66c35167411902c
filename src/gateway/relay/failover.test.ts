// Failures on the path: a connection point dies or drains while requests are in flight, an
// instance restarts. Requests either complete or fail cleanly; nothing hangs.
import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../../test/helpers/cmg-harness.ts";

/** Index of the connection point whose tunnel carries a request in flight at instance 0. */
function carrier(h: CmgHarness): number {
  const t = h.instances[0]!.status().tunnels.find((x) => x.inFlight > 0);
  assert.ok(t, "a tunnel carries the request");
  return Number(/^cp(\d+)\./.exec(t.connectionPoint)![1]) - 1;
}

const holds = (h: CmgHarness, key: string) => h.backend.requests.filter((r) => r.url.endsWith(`/hold/${key}`)).length;

describe("failover between connection points", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 2, connectionsPerInstance: 1 });
    await h.waitReady();
  });
  after(() => h.close());

  it("retries an idempotent request on the other connection point when the first dies before answering", async () => {
    const pending = h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/get1`, { cert: h.pki.client, h2: true });
    await until("the request at the backend", () => holds(h, "get1") === 1);
    const dead = carrier(h);
    await h.killConnectionPoint(dead);
    await until("the retry at the backend", () => holds(h, "get1") === 2);
    h.backend.release("get1");
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "released");
    assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => /failed before answering .*retrying on another tunnel/.test(l.text)));
    await h.startConnectionPoint(dead);
    await h.waitReady();
  });

  it("does not retry a POST the dead connection point may have processed: 502, once at the backend", async () => {
    const pending = h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/post1`, { cert: h.pki.client, method: "POST", body: "state change" });
    await until("the request at the backend", () => holds(h, "post1") === 1);
    const dead = carrier(h);
    await h.killConnectionPoint(dead);
    const r = await pending;
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body.toString()).error, "tunnel_failed");
    assert.equal(holds(h, "post1"), 1);
    h.backend.release("post1");
    await h.startConnectionPoint(dead);
    await h.waitReady();
  });

  for (const proto of ["http/1.1", "h2"] as const) {
    it(`ends a download cleanly (${proto}) when its connection point dies mid-stream`, async () => {
      const path = `/CCM_Proxy_MutualAuth/${h.roles.mp}/bytes/${200 * 1024 * 1024}`;
      const outcome = await new Promise<string>((resolve) => {
        let received = 0;
        const onFirst = (body: NodeJS.ReadableStream & { pause(): void; resume(): void }) => {
          body.pause(); // hold the transfer (flow control backs up to the backend) while the carrier dies
          const dead = carrier(h);
          void h.killConnectionPoint(dead).then(() => body.resume());
        };
        if (proto === "h2") {
          const s = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });
          s.on("error", () => {});
          const st = s.request({ ":path": path });
          st.once("data", () => onFirst(st));
          st.on("data", (c: Buffer) => (received += c.length));
          st.on("end", () => resolve(`ended after ${received} bytes`));
          st.on("error", (e) => resolve(`error after ${received} bytes: ${e.message}`));
          st.on("close", () => {
            s.destroy();
            resolve(`closed after ${received} bytes, rst ${st.rstCode}`);
          });
        } else {
          const req = https.get({ host: "127.0.0.1", port: h.ports[0]!.client, path, ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem, agent: false });
          req.on("error", (e) => resolve(`error after ${received} bytes: ${e.message}`));
          req.on("response", (res) => {
            res.once("data", () => onFirst(res));
            res.on("data", (c: Buffer) => (received += c.length));
            res.on("end", () => resolve(`ended after ${received} bytes`));
            res.on("aborted", () => resolve(`aborted after ${received} bytes`));
            res.on("error", (e) => resolve(`error after ${received} bytes: ${e.message}`));
          });
        }
      });
      // Either way the client knows: a short body with an error, never a silent hang or a "complete"
      // short body. Bytes came first: the download was under way when its connection point died (a
      // request that failed before any byte, such as a refused connection, is not this case).
      assert.match(outcome, /^(error after [1-9]\d* bytes: |aborted after [1-9]\d* bytes$|closed after [1-9]\d* bytes, rst [1-9])/, outcome);
      for (let j = 0; j < 2; j++) if (!h.connectionPoints[j]) await h.startConnectionPoint(j);
      await h.waitReady();
    });
  }

  it("drains a connection point that stops gracefully: requests in flight complete, new ones go elsewhere", async () => {
    const pending = h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/drain1`, { cert: h.pki.client, h2: true });
    await until("the request at the backend", () => holds(h, "drain1") === 1);
    const leaving = carrier(h);
    const stopped = h.stopConnectionPoint(leaving);
    await until("the tunnel to drain", () => h.instances[0]!.status().tunnels.some((t) => t.state === "draining"));
    const other = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/during-drain`, { cert: h.pki.client });
    assert.equal(other.status, 200);
    h.backend.release("drain1");
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "released");
    assert.equal(holds(h, "drain1"), 1, "not retried: it completed where it was");
    await stopped;
    await h.startConnectionPoint(leaving);
    await h.waitReady();
  });
});

describe("reconnection", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 2, connectionPoints: 1, connector: { healthIntervalMs: 100 } });
    await h.waitReady();
  });
  after(() => h.close());

  it("reports the lost instance as critical and reconnects once it is back on the same ports", async () => {
    const cp = h.connectionPoints[0]!;
    assert.equal(cp.health().status, "ok");
    await h.stopInstance(1);
    const lost = () => cp.health().instances.find((i) => i.port === h.ports[1]!.tunnel)!;
    await until("the instance to count as down", () => cp.health().status === "critical" && lost().lastError !== null);
    const h1 = lost();
    assert.equal(h1.connected, 0);
    // The harness's network relay accepts the TCP connection and then drops it (as a proxy or a
    // load balancer in front of a stopped instance would): 12030; a direct dial would give 12029.
    assert.equal(h1.lastError?.code, 12030, JSON.stringify(h1.lastError));
    // Instance 0 keeps serving meanwhile.
    assert.equal((await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client })).status, 200);

    await h.startInstance(1);
    await h.waitReady();
    await cp.waitConnected({ perInstance: 2 });
    assert.equal(cp.health().status, "ok");
    const r = await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.mp}/after-restart`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 200);
    assert.equal(h.instances[1]!.status().settingsRevision, 1, "the restarted instance got its settings again");
    await until("a critical health report", () => h.health[0]!.some((r) => r.status === "critical"));
    await until("an ok health report after it", () => h.health[0]!.at(-1)?.status === "ok");
  });
});
