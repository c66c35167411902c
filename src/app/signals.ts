/**
 * How a long-running command ends: SIGINT or SIGTERM, or (for a supervised child) its supervisor
 * going away. Until then the process stays alive on purpose: a pending promise and signal
 * listeners do not hold Node's event loop, so a server whose listeners all closed (or a
 * supervisor whose children all died) would otherwise exit silently.
 */

import { EXIT_WITH_PARENT_ENV } from "../cmg/local-provider.ts";

export type StopCause = NodeJS.Signals | "parent-exited" | "aborted";

/**
 * Resolves at SIGINT or SIGTERM, or when the supervisor that started this process (with
 * `OPENCMG_EXIT_WITH_PARENT=1` and a pipe on standard input) is gone, however it ended.
 */
export function waitForStop(env: NodeJS.ProcessEnv = process.env, signal?: AbortSignal): Promise<StopCause> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const onAbort = (): void => done("aborted");
    const done = (cause: StopCause): void => {
      clearInterval(keepAlive);
      signal?.removeEventListener("abort", onAbort);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (env[EXIT_WITH_PARENT_ENV] === "1") process.stdin.off("close", onParentGone).pause();
      resolve(cause);
    };
    const onSignal = (sig: NodeJS.Signals): void => done(sig);
    const onParentGone = (): void => done("parent-exited");
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    // The caller ends the wait itself (a supervised CMG was deleted at the site).
    if (signal?.aborted) return done("aborted");
    signal?.addEventListener("abort", onAbort);
    if (env[EXIT_WITH_PARENT_ENV] === "1") {
      // The supervisor holds the other end of this pipe: it closes when the supervisor exits, even on SIGKILL.
      process.stdin.on("close", onParentGone).on("error", onParentGone).resume();
    }
  });
}
