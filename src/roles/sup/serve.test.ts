/**
 * The software update point's content server over real HTTPS on loopback: metadata, whole files,
 * resumable ranges, HEAD, and the refusals (416, path traversal, unknown).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { tempDir } from "../../../test/helpers/databases.ts";
import { parseLines } from "../../logs/cmtrace.ts";
import { createCa, issueCert } from "../../pki/issue.ts";
import { initSite, openSite, type OpenedSite } from "../../site/site.ts";
import { parseRange, startSoftwareUpdatePoint, type SoftwareUpdatePointServer, type SupUpdatesAnswer } from "./serve.ts";
import { contentLibrary, softwareUpdatePointDeps } from "../../app/role-deps.ts";

const SUP = "sup01.contoso.test";
const UPDATE = "KB5040001";
const body = randomBytes(250_000);
const sha = createHash("sha256").update(body).digest("hex");

let dataDir: string;
let site: OpenedSite;
let sup: SoftwareUpdatePointServer;
let caPem: string;
let agent: Agent;

before(async () => {
  dataDir = tempDir();
  site = await openSite({ dataDir });
  await initSite(site, { code: "P01", name: "Test site" });
  await site.services.servers.add({ fqdn: SUP });
  await site.services.roles.add(SUP, "software-update-point", { allowCmgTraffic: true, internalUrl: "https://127.0.0.1:1" });
  // A synchronised update whose file an ADR has put in the library.
  const file = { name: "windows11-kb5040001-x64.cab", url: "https://update.opencmg.test/a.cab", size: body.length, sha256: sha };
  await site.services.updates.store([{ id: UPDATE, title: "2026-11 Cumulative Update", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [file, { ...file, name: "missing.cab" }] }], "test");
  const library = contentLibrary(site);
  library.prepare(UPDATE);
  writeFileSync(library.pathOf(UPDATE, file), body);
  writeFileSync(library.pathOf(UPDATE, { name: ".windows11-kb5040001-x64.cab.abc.part" }), body.subarray(0, 10));
  writeFileSync(`${library.root}/../secret.txt`, "not for clients");

  const ca = await createCa({ commonName: "Test SUP CA" });
  caPem = ca.certPem;
  const cert = await issueCert({ issuer: ca, commonName: SUP, dnsNames: [SUP], ipAddresses: ["127.0.0.1"], usage: "server" });
  sup = await startSoftwareUpdatePoint({ deps: softwareUpdatePointDeps(site), serverFqdn: SUP, listen: { host: "127.0.0.1", port: 0 }, tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
  agent = new Agent({ connect: { ca: caPem } });
});

after(async () => {
  await agent.close();
  await sup.close();
  await site.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") {
  const res = await request(`${sup.url}${path}`, { method, headers, dispatcher: agent });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, bytes };
}

/** Sends a raw request line (undici and URL parsing would normalise `..` away). */
function rawGet(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: sup.port, ca: caPem, servername: SUP }, () => s.end(`GET ${path} HTTP/1.1\r\nHost: ${SUP}\r\nConnection: close\r\n\r\n`));
    let text = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => (text += d));
    s.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    s.on("error", reject);
  });
}

const CONTENT = `/SMS_SUP/v1/content/${UPDATE}/windows11-kb5040001-x64.cab`;

describe("software update point serving", () => {
  it("lists the synchronised updates with relative content URLs", async () => {
    const r = await get("/SMS_SUP/v1/updates");
    assert.equal(r.status, 200);
    const answer = JSON.parse(r.bytes.toString("utf8")) as SupUpdatesAnswer;
    assert.equal(answer.updates.length, 1);
    const f = answer.updates[0]!.files[0]!;
    assert.equal(f.url, `content/${UPDATE}/windows11-kb5040001-x64.cab`);
    assert.equal(f.size, body.length);
    assert.equal(f.sha256, sha);
    // Relative to the updates URL, directly or behind /CCM_Proxy_MutualAuth/<roleId>.
    assert.equal(new URL(f.url, `${sup.url}/SMS_SUP/v1/updates`).pathname, CONTENT);
    assert.equal(new URL(f.url, `https://cmg.test/CCM_Proxy_MutualAuth/7/SMS_SUP/v1/updates`).pathname, `/CCM_Proxy_MutualAuth/7${CONTENT}`);
  });

  it("serves a library file whole", async () => {
    const r = await get(CONTENT);
    assert.equal(r.status, 200);
    assert.equal(r.headers["accept-ranges"], "bytes");
    assert.equal(Number(r.headers["content-length"]), body.length);
    assert.ok(r.bytes.equals(body));
  });

  it("resumes from the middle with a range", async () => {
    const mid = 123_457;
    const r = await get(CONTENT, { range: `bytes=${mid}-` });
    assert.equal(r.status, 206);
    assert.equal(r.headers["content-range"], `bytes ${mid}-${body.length - 1}/${body.length}`);
    assert.ok(r.bytes.equals(body.subarray(mid)));
    const resumed = Buffer.concat([body.subarray(0, mid), r.bytes]);
    assert.equal(createHash("sha256").update(resumed).digest("hex"), sha);

    const slice = await get(CONTENT, { range: "bytes=10-19" });
    assert.equal(slice.status, 206);
    assert.equal(slice.headers["content-range"], `bytes 10-19/${body.length}`);
    assert.ok(slice.bytes.equals(body.subarray(10, 20)));

    const suffix = await get(CONTENT, { range: "bytes=-100" });
    assert.equal(suffix.status, 206);
    assert.ok(suffix.bytes.equals(body.subarray(body.length - 100)));
  });

  it("answers HEAD with the length and no body", async () => {
    const r = await get(CONTENT, {}, "HEAD");
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers["content-length"]), body.length);
    assert.equal(r.headers["accept-ranges"], "bytes");
    assert.equal(r.bytes.length, 0);
  });

  it("refuses an unsatisfiable range with 416", async () => {
    const r = await get(CONTENT, { range: `bytes=${body.length}-` });
    assert.equal(r.status, 416);
    assert.equal(r.headers["content-range"], `bytes */${body.length}`);
  });

  it("refuses path traversal and serves nothing unknown", async () => {
    assert.equal(await rawGet(`/SMS_SUP/v1/content/${UPDATE}/../../secret.txt`), 400);
    assert.equal(await rawGet(`/SMS_SUP/v1/content/..%2F..%2Fsecret.txt/x`), 400);
    assert.equal(await rawGet(`/SMS_SUP/v1/content/${UPDATE}/..%2F..%2Fsecret.txt`), 400);
    assert.equal(await rawGet(`/SMS_SUP/v1/content/%2e%2e/secret.txt`), 400);
    assert.equal((await get(`/SMS_SUP/v1/content/${UPDATE}/.windows11-kb5040001-x64.cab.abc.part`)).status, 404);
    assert.equal((await get(`/SMS_SUP/v1/content/${UPDATE}/missing.cab`)).status, 404);
    assert.equal((await get(`/SMS_SUP/v1/content/KB0/whatever.cab`)).status, 404);
    assert.equal((await get(`/SMS_SUP/v1/nothing`)).status, 404);
  });

  it("logs to SUPServe.log as SMS_SUP", () => {
    const lines = parseLines(readFileSync(`${dataDir}/logs/SUPServe.log`, "utf8"));
    assert.ok(lines.every((l) => l.component === "SMS_SUP"));
    assert.ok(lines.some((l) => l.text.includes("206 bytes 123457-")));
    assert.ok(lines.some((l) => l.text.includes("Refused GET") && l.text.includes(": 400 ")));
  });

  it("parses ranges", () => {
    assert.deepEqual(parseRange("bytes=0-0", 10), [0, 0]);
    assert.deepEqual(parseRange("bytes=5-100", 10), [5, 9]);
    assert.deepEqual(parseRange("bytes=-20", 10), [0, 9]);
    assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=-0", 10), "unsatisfiable");
    assert.equal(parseRange("bytes=0-1,3-4", 10), undefined);
    assert.equal(parseRange("items=0-1", 10), undefined);
  });
});
