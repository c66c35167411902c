// The edge of the data path, at its limits, with real sockets: bodies past their limit (with and
// without a length) reach the role as aborted requests, never as complete truncated ones; header
// sets too large for the connection point get 431 at the gateway and go nowhere; a client that
// cancels its stream cancels the request on-premises at once.
import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../../test/helpers/cmg-harness.ts";

const LIMIT = 256 * 1024;

describe("edge limits: bodies, headers, cancellation", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 2, connectionsPerInstance: 1, limits: { maxRequestBodyBytes: { mp: LIMIT } } });
    await h.waitReady();
  });
  after(() => h.close());

  const at = (key: string) => h.backend.requests.filter((r) => r.url.endsWith(`/${key}`));
  const inFlight = () => h.instances[0]!.status().tunnels.reduce((n, t) => n + t.inFlight, 0);
  const chunk = Buffer.alloc(16 * 1024, 0x62);

  it("HTTP/1.1 chunked upload past the limit: 413 for the device, an aborted request for the role", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request({
        host: "127.0.0.1",
        port: h.ports[0]!.client,
        path: `/CCM_Proxy_MutualAuth/${h.roles.mp}/upload-h1`,
        method: "POST",
        ca: h.pki.root.certPem,
        servername: "cmg.opencmg.test",
        cert: h.pki.client.certPem,
        key: h.pki.client.keyPem,
        agent: false,
        ...({ ALPNProtocols: ["http/1.1"] } as object),
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      // Chunked (no content-length); written until the answer comes (bounded: 64 x 16 KiB = 4 x the limit).
      let n = 0;
      const pump = (): void => {
        while (n < 64) {
          n++;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    assert.equal(status, 413);
    await until("the role to see the upload end", () => at("upload-h1").some((r) => r.aborted || r.complete));
    const seen = at("upload-h1");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.complete, false, "the role must never see a complete request");
    assert.equal(seen[0]!.aborted, true);
    assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => new RegExp(`413, .*past the ${LIMIT}-byte limit of role ${h.roles.mp} \\(mp\\)`).test(l.text)));
  });

  it("HTTP/2 upload without a length past the limit: 413 for the device, an aborted request for the role", async () => {
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/upload-h2` });
    stream.on("error", () => {});
    const status = new Promise<number>((resolve, reject) => {
      stream.on("response", (hd) => resolve(Number(hd[":status"])));
      stream.on("close", () => reject(new Error(`stream closed without a response (code ${stream.rstCode})`)));
    });
    let n = 0;
    const pump = (): void => {
      while (n < 64 && !stream.destroyed) {
        n++;
        if (!stream.write(chunk)) return void stream.once("drain", pump);
      }
    };
    pump();
    assert.equal(await status, 413);
    stream.resume();
    await until("the role to see the upload end", () => at("upload-h2").some((r) => r.aborted || r.complete));
    const seen = at("upload-h2");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.complete, false, "the role must never see a complete request");
    session.destroy();
  });

  it("Content-Length over the limit: 413 before anything is relayed", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/upload-declared`, { cert: h.pki.client, method: "POST", body: Buffer.alloc(LIMIT + 1) });
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body.toString()).error, "body_too_large");
    assert.equal(r.headers["x-opencmg-reason"], "body_too_large");
    assert.equal(at("upload-declared").length, 0);
    const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
    assert.ok(log.some((l) => l.includes(`413, body of ${LIMIT + 1} bytes is over the ${LIMIT}-byte limit of role ${h.roles.mp}`)), log.slice(-3).join("\n"));
  });

  it("too many header fields for the connection point: 431 at the gateway, never relayed or retried", async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 150; i++) headers[`x-field-${i}`] = "v";
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/many-headers`, { cert: h.pki.client, headers });
    assert.equal(r.status, 431);
    assert.equal(JSON.parse(r.body.toString()).error, "headers_too_large");
    assert.equal(at("many-headers").length, 0);
    const log = h.logLines("gw0", "CMGHttpHandler.log").map((l) => l.text);
    assert.ok(log.some((l) => /many-headers.*431, \d+ header fields, over the limit of 100; not relayed/.test(l)), log.slice(-3).join("\n"));
    assert.ok(!log.some((l) => /many-headers.*retrying/.test(l)));
    for (const cp of ["cp0", "cp1"]) assert.ok(!h.logLines(cp, "SMS_Cloud_ProxyConnector.log").some((l) => l.text.includes("many-headers")));
  });

  it("an HTTP/2 client that cancels its stream cancels the request on-premises and releases the tunnel", async () => {
    const closedBefore = h.backend.closedEarly;
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, servername: "cmg.opencmg.test", cert: h.pki.client.certPem, key: h.pki.client.keyPem });
    session.on("error", () => {});
    const stream = session.request({ ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/cancel-h2` });
    stream.on("error", () => {});
    await h.backend.held("cancel-h2");
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await until("the backend request to be cancelled", () => h.backend.closedEarly > closedBefore);
    await until("the tunnel's in-flight count back to 0", () => inFlight() === 0);
    session.destroy();
  });

  it("an HTTP/1.1 client that disconnects cancels the request on-premises", async () => {
    const closedBefore = h.backend.closedEarly;
    const req = https.request({
      host: "127.0.0.1",
      port: h.ports[0]!.client,
      path: `/CCM_Proxy_MutualAuth/${h.roles.mp}/hold/cancel-h1`,
      ca: h.pki.root.certPem,
      servername: "cmg.opencmg.test",
      cert: h.pki.client.certPem,
      key: h.pki.client.keyPem,
      agent: false,
      ...({ ALPNProtocols: ["http/1.1"] } as object),
    });
    req.on("error", () => {});
    req.end();
    await h.backend.held("cancel-h1");
    req.destroy();
    await until("the backend request to be cancelled", () => h.backend.closedEarly > closedBefore);
    await until("the tunnel's in-flight count back to 0", () => inFlight() === 0);
  });
});
