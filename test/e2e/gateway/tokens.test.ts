/**
 * The gateway's token authenticator (`/CCM_Proxy_ServerAuth/<roleId>/...`) on a whole CMG data path
 * on loopback (instances, connection point, stand-in management point): what a valid client token
 * with its proof of possession reaches, and each bad token refused with 401, its reason, a
 * CMGHttpHandler.log line, and nothing relayed. The test plays the site: it signs the tokens and
 * puts the public keys in the settings, as `opencmg` does (test/e2e/cmg/tokens.test.ts runs the real site).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK } from "jose";
import { startCmgHarness, until, type CmgHarness, type HttpResult } from "../../helpers/cmg-harness.ts";
import { loadOrCreateTokenKey, makeProof, type TokenKey } from "../../../src/client/token-key.ts";
import type { PublicJwk, TokenTrust } from "../../../src/wire/tunnel/protocol.ts";

const ISSUER = "opencmg-site:P01";
const AUDIENCE = "opencmg-cmg:cmg1";
const DIRECTORY = "https://login.contoso.test/tenant";
const CLIENT = "GUID:6F9619FF-8B86-D011-B42D-00CF4FC964FF";
const BLOCKED = "GUID:0E984725-C51C-4BF4-9960-E1C80E27ABA0";

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: PublicJwk;
}

async function signingKey(alg = "ES256"): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, jwk: { ...((await exportJWK(publicKey)) as PublicJwk), kid, alg } };
}

const now = () => Math.floor(Date.now() / 1000);

describe("token authenticator at the gateway", () => {
  let h: CmgHarness;
  let current: SigningKey;
  let previous: SigningKey;
  let directoryKey: SigningKey;
  let device: TokenKey;
  let otherDevice: TokenKey;
  let dir: string;
  const role = () => h.roles.mp;
  const base = () => `/CCM_Proxy_ServerAuth/${role()}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "opencmg-tokens-"));
    current = await signingKey();
    previous = await signingKey();
    directoryKey = await signingKey("RS256");
    device = await loadOrCreateTokenKey(join(dir, "device.pem"));
    otherDevice = await loadOrCreateTokenKey(join(dir, "other.pem"));
    const tokens: TokenTrust = {
      issuer: ISSUER,
      audience: AUDIENCE,
      keys: [current.jwk, previous.jwk],
      blocked: [BLOCKED],
      origins: { cmg: ["https://cmg.opencmg.test"], instances: ["https://gw0.opencmg.test"] },
      oidc: { issuer: DIRECTORY, audience: "opencmg", deviceClaim: "deviceid", keys: [directoryKey.jwk] },
    };
    h = await startCmgHarness({ instances: 1, connectionPoints: 1, tokens });
    await h.waitReady();
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  interface TokenShape {
    key?: SigningKey;
    typ?: string;
    kid?: string;
    sub?: string;
    aud?: string;
    iss?: string;
    iat?: number;
    nbf?: number;
    exp?: number;
    jkt?: string;
    extra?: Record<string, unknown>;
  }

  async function token(t: TokenShape = {}): Promise<string> {
    const key = t.key ?? current;
    const iat = t.iat ?? now();
    const claims: Record<string, unknown> = { ...(t.typ === "opencmg-bulk+jwt" ? {} : { cnf: { jkt: t.jkt ?? device.jkt } }), ...t.extra };
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: key.jwk.alg!, kid: t.kid ?? key.kid, typ: t.typ ?? "opencmg-client+jwt" })
      .setIssuer(t.iss ?? ISSUER)
      .setAudience(t.aud ?? AUDIENCE)
      .setIssuedAt(iat)
      .setNotBefore(t.nbf ?? iat)
      .setExpirationTime(t.exp ?? iat + 3600)
      .setJti(randomUUID());
    if (t.typ !== "opencmg-bulk+jwt") jwt.setSubject(t.sub ?? CLIENT);
    return jwt.sign(key.privateKey);
  }

  /** The instance's last DPoP nonce (RFC 9449 section 8), as a client keeps it. */
  let nonce: string | undefined;

  async function send(path: string, raw: string | null, o: { proofKey?: TokenKey; proof?: string; method?: string; cert?: boolean; query?: string } = {}): Promise<HttpResult> {
    const method = o.method ?? "GET";
    const attempt = async (): Promise<HttpResult> => {
      const headers: Record<string, string> = {};
      if (raw !== null) {
        headers.authorization = `DPoP ${raw}`;
        headers.dpop = o.proof ?? (await makeProof(o.proofKey ?? device, method, `https://cmg.opencmg.test${path}`, raw, nonce));
      }
      const res = await h.request(0, path + (o.query ?? ""), { method, headers, cert: o.cert ? h.pki.client : null, ...(method === "POST" ? { body: "{}" } : {}) });
      if (typeof res.headers["dpop-nonce"] === "string") nonce = res.headers["dpop-nonce"];
      return res;
    };
    const first = await attempt();
    // As the client agent does: once more with the nonce the instance asks for.
    return first.headers["x-opencmg-reason"] === "use_dpop_nonce" && o.proof === undefined ? attempt() : first;
  }

  /** A refusal: 401, the reason in the answer, a log line naming it, and nothing relayed. */
  async function refused(r: Promise<HttpResult>, reason: string, status = 401): Promise<void> {
    const before = h.backend.requests.length;
    const res = await r;
    assert.equal(res.status, status, res.body.toString());
    assert.equal(res.headers["x-opencmg-reason"], reason, res.body.toString());
    assert.equal(JSON.parse(res.body.toString()).error, reason);
    assert.equal(h.backend.requests.length, before, "nothing reaches the management point");
    await until(`a CMGHttpHandler.log line for ${reason}`, () => h.logLines("gw0", "CMGHttpHandler.log").some((l) => l.text.includes(`refused with ${status} ${reason}`)));
  }

  it("a valid client token with its proof reaches the management point as a token identity; the token stays at the gateway", async () => {
    const raw = await token();
    const res = await send(`${base()}/SMS_MP/v1/policy`, raw);
    assert.equal(res.status, 200, res.body.toString());
    const seen = h.backend.requests.at(-1)!;
    assert.equal(seen.headers["x-opencmg-client-auth"], "token");
    assert.equal(seen.headers["x-opencmg-client-token"], `client ${CLIENT}`);
    assert.equal(seen.headers["x-opencmg-client-thumbprint"], device.jkt);
    assert.equal(seen.headers.authorization, undefined, "the token is not relayed");
    assert.equal(seen.headers.dpop, undefined, "the proof is not relayed");
    for (const l of h.logLines("gw0", "CMGHttpHandler.log")) assert.ok(!l.text.includes(raw.split(".")[2]!), "no token in the log");
  });

  it("a token of the previous signing key is still accepted (rotation overlap)", async () => {
    const res = await send(`${base()}/SMS_MP/v1/policy`, await token({ key: previous }));
    assert.equal(res.status, 200, res.body.toString());
  });

  it("expired", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ iat: now() - 7200, exp: now() - 3600 })), "expired"));
  it("not yet valid", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ nbf: now() + 3600, exp: now() + 7200 })), "not_yet_valid"));

  it("wrong signature: signed by another key under the current key's ID", async () => {
    const forger = await signingKey();
    await refused(send(`${base()}/SMS_MP/v1/policy`, await token({ key: forger, kid: current.kid })), "bad_signature");
  });

  it("unknown key ID", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ key: await signingKey() })), "unknown_key"));

  it("alg none", async () => {
    const raw = new UnsecuredJWT({ sub: CLIENT, cnf: { jkt: device.jkt } }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("1h").setJti(randomUUID()).encode();
    await refused(send(`${base()}/SMS_MP/v1/policy`, raw), "alg_not_allowed");
  });

  it("HS256 signed with the site's public key as the HMAC secret", async () => {
    for (const secret of [new TextEncoder().encode(JSON.stringify(current.jwk)), new TextEncoder().encode(await exportSPKI((await importPublic(current.jwk)) as CryptoKey))]) {
      const raw = await new SignJWT({ sub: CLIENT, cnf: { jkt: device.jkt } })
        .setProtectedHeader({ alg: "HS256", kid: current.kid, typ: "opencmg-client+jwt" })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("1h")
        .setJti(randomUUID())
        .sign(secret);
      await refused(send(`${base()}/SMS_MP/v1/policy`, raw), "alg_not_allowed");
    }
  });

  it("wrong audience: a token for another CMG", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ aud: "opencmg-cmg:other" })), "wrong_audience"));
  it("a blocked client", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ sub: BLOCKED })), "blocked"));
  it("a token of another type", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ typ: "JWT" })), "wrong_token_type"));

  it("a token in the query string, whatever else the request carries", async () => {
    const raw = await token();
    await refused(send(`${base()}/SMS_MP/v1/policy`, raw, { query: `?access_token=${raw}` }), "token_in_query");
    await refused(send(`${base()}/SMS_MP/v1/policy`, null, { query: `?x=${raw}` }), "token_in_query");
  });

  it("an oversized token", async () => refused(send(`${base()}/SMS_MP/v1/policy`, await token({ extra: { pad: "x".repeat(9000) } })), "token_too_large"));

  it("an ID token from an untrusted issuer", async () => {
    const raw = await token({ key: directoryKey, typ: "JWT", iss: "https://evil.example.test/", aud: "opencmg", extra: { deviceid: "PC-9" } });
    await refused(send(`${base()}/SMS_MP/v1/register`, raw, { method: "POST" }), "untrusted_issuer");
  });

  it("a directory ID token registers, and does nothing else", async () => {
    const raw = await token({ key: directoryKey, typ: "JWT", iss: DIRECTORY, aud: "opencmg", extra: { deviceid: "PC-9" } });
    const res = await send(`${base()}/SMS_MP/v1/register`, raw, { method: "POST" });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(h.backend.requests.at(-1)!.headers["x-opencmg-client-token"], `oidc ${DIRECTORY} PC-9`);
    await refused(send(`${base()}/SMS_MP/v1/policy`, raw), "token_not_for_path");
  });

  it("a bulk registration token only registers", async () => {
    const raw = await token({ typ: "opencmg-bulk+jwt" });
    await refused(send(`${base()}/SMS_MP/v1/policy`, raw), "token_not_for_path");
  });

  it("a client token on the certificate path, and a certificate on the token path", async () => {
    await refused(h.request(0, `/CCM_Proxy_MutualAuth/${role()}/SMS_MP/v1/policy`, { headers: { authorization: `DPoP ${await token()}` } }), "no_certificate", 403);
    await refused(send(`${base()}/SMS_MP/v1/policy`, null, { cert: true }), "no_token");
  });

  it("proof of possession: missing, by another key, for another path, token or method, replayed", async () => {
    const raw = await token();
    const path = `${base()}/SMS_MP/v1/policy`;
    await refused(h.request(0, path, { headers: { authorization: `DPoP ${raw}` } }), "proof_required");
    await refused(send(path, raw, { proofKey: otherDevice }), "bad_proof");
    await refused(send(path, raw, { proof: await makeProof(device, "GET", `https://cmg.opencmg.test${base()}/SMS_MP/v1/location`, raw, nonce) }), "proof_wrong_url");
    await refused(send(path, raw, { proof: await makeProof(device, "GET", `https://cmg.opencmg.test${path}`, await token(), nonce) }), "bad_proof");
    await refused(send(path, raw, { proof: await makeProof(device, "POST", `https://cmg.opencmg.test${path}`, raw, nonce) }), "proof_wrong_method");
    await refused(send(path, raw, { proof: await makeProof(device, "GET", `https://cmg.opencmg.test${path}`, raw) }), "use_dpop_nonce");
    const proof = await makeProof(device, "GET", `https://cmg.opencmg.test${path}`, raw, nonce);
    assert.equal((await send(path, raw, { proof })).status, 200);
    await refused(send(path, raw, { proof }), "proof_replayed");
  });
});

async function importPublic(jwk: PublicJwk): Promise<CryptoKey> {
  const { importJWK } = await import("jose");
  return (await importJWK(jwk as JWK, jwk.alg, { extractable: true })) as CryptoKey;
}
