import assert from "node:assert/strict";
import { it } from "node:test";
import { ValidationError } from "../errors.ts";
import { logSizeOpt } from "./options.ts";

it("--log-size-mb gives the rotation size in bytes, decimals of a megabyte included", () => {
  assert.equal(logSizeOpt("1.5"), 1_572_864);
  assert.equal(logSizeOpt("2.5"), 2_621_440, "the default is LogSet's own (the platform's 2.5 MB)");
  assert.equal(logSizeOpt("1"), 1_048_576);
  assert.equal(logSizeOpt("1024"), 1_073_741_824);
  assert.equal(logSizeOpt("100"), 104_857_600);
});

it("--log-size-mb refuses anything but a plain decimal number of megabytes from 1 to 1024, naming the field and the rule", () => {
  // Out of range; not a number; what Number() would take but a unit file should not hold (exponent, hexadecimal, sign, spaces).
  for (const bad of ["0", "0.5", "1024.5", "2000", "", "abc", "-1", "1e3", "0x10", "+5", " 5", "5 ", "2.", ".5", "Infinity", "NaN"]) {
    assert.throws(
      () => logSizeOpt(bad),
      (e: unknown) =>
        e instanceof ValidationError &&
        e.field === "logSizeMb" &&
        e.rule === "must be a number of megabytes from 1 to 1024" &&
        e.message === `logSizeMb: must be a number of megabytes from 1 to 1024 (got ${JSON.stringify(bad)})`,
      JSON.stringify(bad),
    );
  }
});
