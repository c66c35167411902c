/**
 * Waits until `check` gives a value (anything but undefined or false), looking every 20 ms, and
 * returns it; fails with `what` after `timeoutMs`. The bound is generous (CI machines are slow and
 * busy): only a broken test ever waits for it, so no test asserts on how long this takes.
 *
 *   await until("revision 2 in force", () => h.instances[0]!.status().settingsRevision === 2);
 *   const pid = await until("a new instance process", () => childrenOf(sup.pid!).find((p) => p !== first));
 */
export async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
