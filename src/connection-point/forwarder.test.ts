// The connection point checks the path again before it forwards (the gateway is on the internet
// side): a path that would leave the role's internal URL is refused with 400 bad_path and a log
// line, and the backend sees nothing.
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Agent } from "undici";
import { startBackend, type TestBackend } from "../../test/helpers/cmg-backend.ts";
import { TRAVERSAL_MATRIX } from "../../test/helpers/traversal.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { Header, type CmgSettings } from "../wire/tunnel/protocol.ts";
import { createForwarder } from "./forwarder.ts";

describe("forwarder: paths stay under the role's internal URL", () => {
  let backend: TestBackend;
  let server: http2.Http2Server;
  let session: http2.ClientHttp2Session;
  const dispatcher = new Agent();
  const lines: string[] = [];
  const log: ComponentLog = { file: "test.log", component: "test", info: (t) => lines.push(t), warn: (t) => lines.push(t), error: (t) => lines.push(t) };
  const settings: CmgSettings = { revision: 1, cmg: "cmg1", settingsKeys: [], connectionPoints: [], trustedRoots: [], intermediates: [], crlCheck: false, urlMap: { "1": { kind: "sup", allowCmgTraffic: true } } };

  before(async () => {
    backend = await startBackend();
    const backends = new Map([["1", { url: `${backend.url}/sup` }]]);
    server = http2.createServer();
    server.on("stream", createForwarder({ routes: () => ({ settings, backends }), dispatcher, log, record: () => {} }));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    session.close();
    await new Promise((r) => server.close(r));
    await dispatcher.close();
    await backend.close();
  });

  function get(path: string): Promise<{ status: number; error: string | undefined; body: string }> {
    return new Promise((resolve, reject) => {
      const st = session.request({ ":path": path, [Header.role]: "1", [Header.requestId]: "t1" }, { endStream: true });
      let body = "";
      let status = 0;
      let error: string | undefined;
      st.on("response", (h) => {
        status = Number(h[":status"]);
        error = h[Header.error] as string | undefined;
      });
      st.on("data", (d: Buffer) => (body += d.toString()));
      st.on("end", () => resolve({ status, error, body }));
      st.on("error", reject);
    });
  }

  it("forwards a path inside the role, dot segments removed", async () => {
    const r = await get("/x/./y/../ClientWebService/client.asmx?q=1");
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).url, "/sup/x/ClientWebService/client.asmx?q=1");
  });

  it("refuses every path of the traversal matrix with 400 bad_path, logs it, and forwards nothing", async () => {
    const seen = backend.requests.length;
    for (const p of TRAVERSAL_MATRIX) {
      const r = await get(p);
      assert.equal(r.status, 400, `${p}: ${r.status} ${r.body}`);
      assert.equal(r.error, "bad_path", p);
    }
    assert.equal(backend.requests.length, seen, "the backend saw nothing");
    assert.ok(lines.some((l) => /refused: 400 bad_path: the path climbs above the role's root/.test(l)), lines.join("\n"));
  });
});
