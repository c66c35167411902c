import assert from "node:assert/strict";
import { it } from "node:test";
import { StreamLimitError, StreamSlots } from "./stream-slots.ts";

const refusal = (f: () => unknown): { code: string | number; status: number } => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof StreamLimitError);
    return { code: e.code, status: e.httpStatus };
  }
  throw new Error("not refused");
};

it("shares the streams out: per identity (429), then in all (503); a slot given back, once, serves again", () => {
  const slots = new StreamSlots({ total: 5, perIdentity: 2 });
  const a = [slots.take("auditor"), slots.take("auditor")];
  assert.deepEqual(refusal(() => slots.take("auditor")), { code: "EVENT_STREAMS_PER_IDENTITY", status: 429 });
  slots.take("admin");
  slots.take("admin");
  slots.take("ops");
  assert.equal(slots.total, 5);
  assert.deepEqual(refusal(() => slots.take("ops")), { code: "EVENT_STREAMS", status: 503 });
  a[0]!();
  a[0]!(); // given back twice: counted once
  assert.equal(slots.total, 4);
  slots.take("ops");
  assert.deepEqual(refusal(() => slots.take("auditor")), { code: "EVENT_STREAMS", status: 503 });
});
