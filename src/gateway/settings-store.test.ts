import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { admitted, makeSettingsSigner, newSettingsKey, startupTrust } from "../../test/helpers/settings-signer.ts";
import type { CmgSettings } from "../wire/tunnel/protocol.ts";
import { connectionPointIdentity, signSettings } from "../wire/tunnel/signed-settings.ts";
import { SettingsStore } from "./settings-store.ts";

describe("settings store: only the site's signed settings, newer only", () => {
  let pki: TestPki;
  let base: CmgSettings;
  const signer = makeSettingsSigner();
  before(async () => {
    pki = await makeTestPki();
    base = { revision: 5, cmg: "cmg1", settingsKeys: signer.keys, connectionPoints: [admitted(pki.tunnelClient)], trustedRoots: pki.trust.roots, intermediates: [], crlCheck: false, urlMap: {} };
  });
  const store = (minRevision = 0): SettingsStore => new SettingsStore("cmg1", startupTrust(signer.keys, [pki.tunnelClient], minRevision));
  const refusal = (r: ReturnType<SettingsStore["offer"]>): string => (r.result === "refused" ? r.error.reason : r.result);

  it("applies a document the site signed, for this CMG, with a higher revision; keeps it otherwise", () => {
    const s = store();
    assert.equal(s.offer(signer.sign(base)).result, "applied");
    assert.equal(s.offer(signer.sign(base)).result, "same");
    assert.equal(refusal(s.offer(signer.sign({ ...base, crlCheck: true }))), "revision_reused");
    assert.equal(refusal(s.offer(signer.sign({ ...base, revision: 4 }))), "stale_revision");
    assert.equal(refusal(s.offer(signer.sign({ ...base, revision: 6, cmg: "other" }))), "wrong_cmg");
    const attacker = newSettingsKey();
    assert.equal(refusal(s.offer(signSettings({ ...base, revision: Number.MAX_SAFE_INTEGER, settingsKeys: [attacker.jwk] }, [attacker.signing]))), "unknown_key");
    // The site key's kid, someone else's signature.
    const forged = signSettings({ ...base, revision: 7 }, [{ kid: signer.keys[0]!.kid, privateKeyPem: attacker.signing.privateKeyPem }]);
    assert.equal(refusal(s.offer(forged)), "bad_signature");
    // A genuine signature over other bytes.
    const genuine = signer.sign({ ...base, revision: 8 });
    const tampered = { ...genuine, payload: Buffer.from(JSON.stringify({ ...base, revision: 9, connectionPoints: [] })).toString("base64url") };
    assert.equal(refusal(s.offer(tampered)), "bad_signature");
    assert.equal(refusal(s.offer(signer.sign({ ...base, revision: 2 ** 53 }))), "invalid");
    assert.equal(refusal(s.offer({ type: "settings", settings: base })), "malformed");
    assert.equal(s.current()?.revision, 5, "the settings in force stay");
  });

  it("never goes below the start-up bundle's revision", () => {
    assert.equal(refusal(store(6).offer(signer.sign(base))), "stale_revision");
    assert.equal(store(5).offer(signer.sign(base)).result, "applied");
  });

  it("admits the bundle's connection points first, then those of the settings in force", () => {
    const s = store();
    const cp = connectionPointIdentity(new X509Certificate(pki.tunnelClient.certPem));
    assert.equal(s.admits(cp), true);
    assert.equal(s.admits({ ...cp, serial: "01" }), false, "another certificate of the same name");
    s.offer(signer.sign({ ...base, connectionPoints: [] }));
    assert.equal(s.admits(cp), false);
  });

  it("follows a rotation: the new key is announced in a document the old one signed too", () => {
    const rotating = makeSettingsSigner();
    const s = new SettingsStore("cmg1", startupTrust(rotating.keys, []));
    const oldKid = rotating.keys[0]!.kid;
    rotating.rotate();
    assert.equal(s.offer(rotating.sign({ ...base, revision: 1, settingsKeys: rotating.keys })).result, "applied");
    assert.deepEqual(s.trustedKids(), rotating.keys.map((k) => k.kid));
    rotating.rotate();
    // Signed by the newest and by the one announced before: accepted; the first key is gone.
    assert.equal(s.offer(rotating.sign({ ...base, revision: 2, settingsKeys: rotating.keys })).result, "applied");
    assert.ok(!s.trustedKids().includes(oldKid));
    assert.equal(refusal(s.offer(signSettings({ ...base, revision: 3 }, [{ kid: oldKid, privateKeyPem: newSettingsKey().signing.privateKeyPem }]))), "unknown_key");
  });
});
