/**
 * The admin API and the console over TLS, against real `opencmg site serve` processes: by default
 * it presents a certificate the site CA issued for the site server's names (chain and name checked
 * with the site CA as the only trust), refuses TLS 1.1 and TLS 1.2 CBC suites, serves the API to a
 * client trusting the site CA, and a browser on another name (not localhost) signs in to the console
 * with a Secure session cookie. Plain HTTP is served on loopback only when asked and refused with a
 * clear error on 0.0.0.0; a given certificate (PEM files, PFX) is presented as given.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions, type PeerCertificate } from "node:tls";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { launchBrowser } from "../../helpers/browser.ts";
import { tempDir } from "../../helpers/databases.ts";
import { until } from "../../helpers/until.ts";

const NAME = "admin.contoso.test";
const children: ChildProcess[] = [];

function cli(data: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [OPENCMG_BIN, "--data", data, ...args], { encoding: "utf8", env: { ...process.env, OPENCMG_DATA: "" } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Starts `site serve ARGS`; resolves with its stderr once it says where it serves, or rejects with it when it exits. */
async function serve(data: string, args: string[]): Promise<{ child: ChildProcess; line: string; url: URL }> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "site", "serve", ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENCMG_DATA: "", OPENCMG_ENDPOINT_CHECK_INTERVAL: "0" } });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const line = await until("site serve to listen", () => {
    if (child.exitCode !== null) throw new Error(`site serve exited (${child.exitCode}): ${stderr}`);
    return /serving the admin API on .*/.exec(stderr)?.[0];
  });
  return { child, line, url: new URL(/serving the admin API on (\S+)/.exec(line)![1]!) };
}

/** Runs `site serve ARGS` expecting it to refuse: its exit code and stderr. */
async function refused(data: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const r = spawnSync(process.execPath, [OPENCMG_BIN, "--data", data, "site", "serve", ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, OPENCMG_DATA: "" } });
  return { code: r.status, stderr: r.stderr };
}

/** A TLS handshake: the peer certificate and whether it verified, or the error that ended it. */
function handshake(o: ConnectionOptions): Promise<{ ok: true; peer: PeerCertificate; protocol: string | null } | { ok: false; error: Error }> {
  return new Promise((resolve) => {
    const s = connect(o);
    s.once("secureConnect", () => {
      resolve({ ok: true, peer: s.getPeerCertificate(), protocol: s.getProtocol() });
      s.end();
    });
    s.once("error", (error) => resolve({ ok: false, error }));
  });
}

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
});

describe("site serve over TLS with the site CA's certificate", () => {
  let data: string;
  let caPem: string;
  let server: { child: ChildProcess; line: string; url: URL };
  let adminToken: string;

  before(async () => {
    data = tempDir("opencmg-site-tls-");
    cli(data, "site", "init");
    adminToken = readFileSync(join(data, "admin.token"), "utf8").trim();
    caPem = readFileSync(join(data, "pki", "site-ca.pem"), "utf8");
    // 127.0.0.2: an address other than the usual 127.0.0.1, given as the site server's own.
    server = await serve(data, ["--listen", "127.0.0.2:0", "--tls-name", NAME]);
  });

  it("says https and the site CA file to trust", () => {
    assert.equal(server.url.protocol, "https:");
    assert.equal(server.url.hostname, "127.0.0.2");
    assert.ok(server.line.includes(`trust ${join(data, "pki", "site-ca.pem")}`), server.line);
  });

  it("presents a certificate the site CA issued for the site server's names: chain and name verify against the site CA alone", async () => {
    const port = Number(server.url.port);
    const byName = await handshake({ host: "127.0.0.2", port, servername: NAME, ca: [caPem] });
    assert.ok(byName.ok, byName.ok ? "" : byName.error.message);
    const leaf = new X509Certificate(byName.peer.raw);
    assert.ok(leaf.verify(new X509Certificate(caPem).publicKey), "signed by the site CA");
    assert.ok(leaf.checkHost(NAME) && leaf.checkHost(hostname()), `names: ${leaf.subjectAltName}`);
    assert.ok(leaf.checkIP("127.0.0.2"), "the listen address is in");
    // The address itself verifies too (the CLI and health checks on the host).
    const byAddress = await handshake({ host: "127.0.0.2", port, ca: [caPem] });
    assert.ok(byAddress.ok, byAddress.ok ? "" : byAddress.error.message);
    // A name the certificate does not carry fails the check; so does a client without the site CA.
    const otherName = await handshake({ host: "127.0.0.2", port, servername: "other.contoso.test", ca: [caPem] });
    assert.ok(!otherName.ok && /other\.contoso\.test/.test(otherName.error.message), "another name is refused");
    const noCa = await handshake({ host: "127.0.0.2", port, servername: NAME });
    assert.ok(!noCa.ok && /self.signed|unable to (get|verify)/i.test(noCa.error.message), noCa.ok ? "verified without the site CA" : noCa.error.message);
  });

  it("speaks TLS 1.2 and 1.3 with the product's suites; refuses TLS 1.1 and TLS 1.2 CBC suites", async () => {
    const base = { host: "127.0.0.2", port: Number(server.url.port), servername: NAME, ca: [caPem] };
    const v13 = await handshake({ ...base, minVersion: "TLSv1.3" });
    assert.ok(v13.ok && v13.protocol === "TLSv1.3");
    const v12 = await handshake({ ...base, maxVersion: "TLSv1.2" });
    assert.ok(v12.ok && v12.protocol === "TLSv1.2");
    // The client allows TLS 1.1 (and the security level that goes with it): the server must be the one to say no.
    const v11 = await handshake({ ...base, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" });
    assert.ok(!v11.ok, "TLS 1.1 refused");
    assert.match(v11.error.message, /protocol version|unsupported protocol|wrong version/i);
    const cbc = await handshake({ ...base, maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256" });
    assert.ok(!cbc.ok, cbc.ok ? `a CBC suite was accepted over ${cbc.protocol}` : "");
    assert.match(cbc.error.message, /handshake failure|no shared cipher/i);
  });

  it("serves the admin API to a client that trusts the site CA; the console's sign-in sets a Secure cookie", async () => {
    const agent = new Agent({ connect: { ca: caPem, servername: NAME } });
    try {
      const me = await request(new URL("/api/v1/sites", server.url), { dispatcher: agent, headers: { authorization: `Bearer ${adminToken}` } });
      const sites = await me.body.text();
      assert.equal(me.statusCode, 200, sites);
      assert.equal((JSON.parse(sites) as { code: string }[])[0]!.code, "P01");
      const signIn = await request(new URL("/api/v1/session", server.url), { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: adminToken }) });
      assert.equal(signIn.statusCode, 201, await signIn.body.text());
      assert.match(String(signIn.headers["set-cookie"]), /; Secure;/);
    } finally {
      await agent.close();
    }
  });

  it("a browser on another machine's name (not localhost) that trusts the server's certificate signs in; the cookie is Secure", async () => {
    const leaf = new X509Certificate(readFileSync(join(data, "pki", "site-api.pem")));
    const spki = createHash("sha256").update(leaf.publicKey.export({ type: "spki", format: "der" })).digest("base64");
    const port = server.url.port;
    const consoleUrl = `https://${NAME}:${port}/`;
    // The name resolves to the server's address inside the browser only: no hosts file, no DNS.
    const resolve = `--host-resolver-rules=MAP ${NAME} 127.0.0.2`;
    // Without trust, the browser refuses the site CA's certificate: the trust below is what lets it in.
    const untrusting = await launchBrowser([resolve]);
    try {
      const page = await (await untrusting.newContext()).newPage();
      await assert.rejects(page.goto(consoleUrl), /ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await untrusting.close();
    }
    const browser = await launchBrowser([resolve, `--ignore-certificate-errors-spki-list=${spki}`]);
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(consoleUrl);
      await page.getByLabel("Admin token").fill(adminToken);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Sites", exact: true }).waitFor();
      const cookie = (await context.cookies(consoleUrl)).find((c) => c.name === "opencmg_session");
      assert.ok(cookie, "the session cookie is kept for the site server's name");
      assert.equal(cookie.secure, true);
      assert.equal(cookie.domain, NAME);
      // The session works: a reload stays signed in.
      await page.reload();
      await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Sites", exact: true }).waitFor();
    } finally {
      await browser.close();
    }
  });
});

describe("site serve with plain HTTP or a given certificate", () => {
  let data: string;
  before(() => {
    data = tempDir("opencmg-site-tls-given-");
    cli(data, "site", "init");
  });

  it("refuses plain HTTP on an address other machines reach, naming the option and the rule", async () => {
    const r = await refused(data, ["--listen", "0.0.0.0:0", "--insecure-http"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /insecure-http: plain HTTP listens on a loopback address only .* not "0\.0\.0\.0"/);
  });

  it("serves plain HTTP on loopback when asked", async () => {
    const s = await serve(data, ["--listen", "127.0.0.1:0", "--insecure-http"]);
    assert.equal(s.url.protocol, "http:");
    assert.equal((await fetch(new URL("/api/v1/openapi.json", s.url))).status, 200);
    assert.doesNotMatch(s.line, /trust /);
    s.child.kill("SIGTERM");
    await until("site serve to stop", () => s.child.exitCode !== null);
  });

  it("presents a given certificate (PEM files, then PFX) as given", async () => {
    const root = await createCa({ commonName: "Contoso Admin Root" });
    const given = await issueCert({ issuer: root, commonName: NAME, dnsNames: [NAME], usage: "server" });
    const dir = tempDir("opencmg-site-tls-files-");
    writeFileSync(join(dir, "api.pem"), given.certPem);
    writeFileSync(join(dir, "api.key"), given.keyPem, { mode: 0o600 });
    const s = await serve(data, ["--listen", "127.0.0.1:0", "--tls-cert", join(dir, "api.pem"), "--tls-key", join(dir, "api.key")]);
    assert.doesNotMatch(s.line, /trust /, "no site CA to trust");
    const h = await handshake({ host: "127.0.0.1", port: Number(s.url.port), servername: NAME, ca: [root.certPem] });
    assert.ok(h.ok, h.ok ? "" : h.error.message);
    assert.equal(new X509Certificate(h.peer.raw).fingerprint256, new X509Certificate(given.certPem).fingerprint256);
    s.child.kill("SIGTERM");
    await until("site serve to stop", () => s.child.exitCode !== null);

    // The same pair as a PFX with a password read from a file.
    writeFileSync(join(dir, "pfx.pass"), "Pfx-Pass-1\n", { mode: 0o600 });
    const made = spawnSync("openssl", ["pkcs12", "-export", "-in", join(dir, "api.pem"), "-inkey", join(dir, "api.key"), "-out", join(dir, "api.pfx"), "-passout", `file:${join(dir, "pfx.pass")}`], { encoding: "utf8" });
    assert.equal(made.status, 0, made.stderr);
    const p = await serve(data, ["--listen", "127.0.0.1:0", "--tls-pfx", join(dir, "api.pfx"), "--tls-pfx-password-file", join(dir, "pfx.pass")]);
    const hp = await handshake({ host: "127.0.0.1", port: Number(p.url.port), servername: NAME, ca: [root.certPem] });
    assert.ok(hp.ok, hp.ok ? "" : hp.error.message);
    assert.equal(new X509Certificate(hp.peer.raw).fingerprint256, new X509Certificate(given.certPem).fingerprint256);
    p.child.kill("SIGTERM");
    await until("site serve to stop", () => p.child.exitCode !== null);
  });

  it("refuses a key that is not the certificate's, naming the option", async () => {
    const root = await createCa({ commonName: "Contoso Admin Root" });
    const a = await issueCert({ issuer: root, commonName: NAME, dnsNames: [NAME], usage: "server" });
    const b = await issueCert({ issuer: root, commonName: NAME, dnsNames: [NAME], usage: "server" });
    const dir = tempDir("opencmg-site-tls-mismatch-");
    writeFileSync(join(dir, "a.pem"), a.certPem);
    writeFileSync(join(dir, "b.key"), b.keyPem, { mode: 0o600 });
    const r = await refused(data, ["--listen", "127.0.0.1:0", "--tls-cert", join(dir, "a.pem"), "--tls-key", join(dir, "b.key")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tls-key: the key does not match the certificate/);
  });
});
