import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ConflictError, ValidationError } from "../../errors.ts";
import { createCa, type IssuedCert } from "../../pki/issue.ts";
import { changeCaList, lockouts, orphanIntermediates, refuseImmutable, refuseLockout, thumbprintOfPem } from "./cmg-changes.ts";

const FLAGS = { add: "--add-trusted-root", remove: "--remove-trusted-root", replace: "--trusted-root" };
const field = (name: string, rule?: RegExp) => (e: unknown) => e instanceof ValidationError && e.field === name && (!rule || rule.test(e.message));

describe("CMG changes after creation", () => {
  let root: IssuedCert;
  let root2: IssuedCert;
  let root3: IssuedCert;
  let sub: IssuedCert;
  let subSub: IssuedCert;
  before(async () => {
    root = await createCa({ commonName: "Changes Root" });
    root2 = await createCa({ commonName: "Changes Root 2" });
    root3 = await createCa({ commonName: "Changes Root 3" });
    sub = await createCa({ commonName: "Changes Sub", issuer: root });
    subSub = await createCa({ commonName: "Changes Sub Sub", issuer: sub });
  });

  it("refuses a change of what is fixed at creation, saying a new CMG is needed; the same value is no change", () => {
    const current = { serviceFqdn: "cmg.contoso.com", serviceName: "cmg", cloud: "public", provider: "local", region: "local", resourceGroup: "cmg-rg" };
    for (const [f, v] of [["region", "westeurope"], ["cloud", "usgov"], ["provider", "external"], ["serviceFqdn", "other.contoso.com"], ["serviceName", "other"], ["resourceGroup", "rg2"]] as const) {
      assert.throws(() => refuseImmutable({ [f]: v }, current), field(f, /create a new CMG/), f);
    }
    refuseImmutable({ region: "local", serviceFqdn: "CMG.contoso.com" }, current);
    refuseImmutable({}, current);
  });

  it("adds and removes certificates keeping the rest, by thumbprint in any case or with colons", () => {
    const added = changeCaList("trustedRoots", [root.certPem], { add: [root2.certPem] }, 2, false, FLAGS);
    assert.deepEqual(added, [root.certPem, root2.certPem]);
    const t = thumbprintOfPem(root.certPem);
    const colons = t.toLowerCase().match(/../g)!.join(":");
    assert.deepEqual(changeCaList("trustedRoots", added, { remove: [colons] }, 2, false, FLAGS), [root2.certPem]);
  });

  it("refuses an unknown thumbprint, a duplicate, and a list over the limit, naming the flag to use", () => {
    assert.throws(() => changeCaList("trustedRoots", [root.certPem], { remove: ["00".repeat(20)] }, 2, false, FLAGS), field("trustedRoots", /no certificate with thumbprint/));
    assert.throws(() => changeCaList("trustedRoots", [root.certPem], { remove: ["xyz"] }, 2, false, FLAGS), field("trustedRoots", /40 hex digits/));
    assert.throws(() => changeCaList("trustedRoots", [root.certPem], { add: [root.certPem] }, 2, false, FLAGS), field("trustedRoots", /already in the list/));
    assert.throws(() => changeCaList("trustedRoots", [root.certPem, root2.certPem], { add: [root3.certPem] }, 2, false, FLAGS), field("trustedRoots", /at most 2 .*--remove-trusted-root/));
    // Removing one makes room for another in the same change.
    assert.equal(changeCaList("trustedRoots", [root.certPem, root2.certPem], { add: [root3.certPem], remove: [thumbprintOfPem(root2.certPem)] }, 2, false, FLAGS).length, 2);
  });

  it("replaces the whole list only when asked to", () => {
    assert.throws(() => changeCaList("trustedRoots", [root.certPem], { replace: [root2.certPem] }, 2, false, FLAGS), field("trustedRoots", /--replace-certificates/));
    assert.deepEqual(changeCaList("trustedRoots", [root.certPem], { replace: [root2.certPem] }, 2, true, FLAGS), [root2.certPem]);
    assert.throws(() => changeCaList("trustedRoots", [root.certPem], { replace: [root2.certPem], add: [root3.certPem] }, 2, true, FLAGS), field("trustedRoots", /not both/));
    assert.throws(() => changeCaList("trustedRoots", [], { replace: [root.certPem, root2.certPem, root3.certPem] }, 2, true, FLAGS), field("trustedRoots", /at most 2/));
  });

  it("finds intermediates that chain to no root, also through another intermediate", () => {
    assert.deepEqual(orphanIntermediates([root.certPem], [subSub.certPem, sub.certPem]), []);
    assert.equal(orphanIntermediates([root2.certPem], [sub.certPem, subSub.certPem]).length, 2);
    assert.match(orphanIntermediates([root.certPem], [subSub.certPem])[0]!, /Changes Sub Sub/);
  });

  it("says who would be locked out: orphaned intermediates, clients of a removed root, clients of unknown root", () => {
    const rootT = thumbprintOfPem(root.certPem);
    const clients = [
      { name: "PC-1", rootThumbprint: rootT },
      { name: "PC-2", rootThumbprint: thumbprintOfPem(root2.certPem) },
    ];
    assert.deepEqual(lockouts({ roots: [root.certPem, root2.certPem] }, { roots: [root.certPem, root2.certPem, root3.certPem], intermediates: [sub.certPem] }, clients), [], "adding locks nobody out");
    const removed = lockouts({ roots: [root.certPem, root2.certPem] }, { roots: [root2.certPem], intermediates: [sub.certPem] }, clients);
    assert.equal(removed.length, 2);
    assert.match(removed[0]!, /Changes Sub .*would chain to no trusted root/);
    assert.match(removed[1]!, new RegExp(`1 client\\(s\\) .*${rootT}.*PC-1`));
    assert.deepEqual(lockouts({ roots: [root.certPem, root2.certPem] }, { roots: [root.certPem], intermediates: [] }, [{ name: "PC-1", rootThumbprint: rootT }]), [], "no client of the removed root");
    const unknown = lockouts({ roots: [root.certPem, root2.certPem] }, { roots: [root.certPem], intermediates: [] }, [{ name: "PC-OLD", rootThumbprint: null }]);
    assert.match(unknown[0]!, /before their root was recorded.*PC-OLD/);
    assert.throws(() => refuseLockout("trustedRoots", removed, false), (e: unknown) => e instanceof ConflictError && /--force/.test(e.message) && /PC-1/.test(e.message));
    refuseLockout("trustedRoots", removed, true);
    refuseLockout("trustedRoots", [], false);
  });
});
