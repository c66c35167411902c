/**
 * A real browser for the console tests: Debian's chromium (`.ci/run` installs it) driven by
 * playwright-core, which downloads no browser of its own. Loopback only; screenshots go to
 * test-artifacts/console/ (git-ignored).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = process.env.OPENCMG_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = join(import.meta.dirname, "..", "..", "test-artifacts", "console");

/** `extraArgs`: more chromium switches (a TLS test maps a name to an address and trusts the server's key). */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", ...extraArgs],
  });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/**
 * Waits until the page holds still: web fonts loaded and no finite animation or transition
 * running (Fluent's dialogs and drawers fade and slide in with the Web Animations API). A check
 * made half-way through a fade-in measures blended colours: a dialog's primary button read 3.43:1
 * against white text at 60% opacity. Endless animations (spinners) are left alone; the page is
 * polled once per frame, so this waits exactly as long as the browser takes, however busy.
 */
export async function settle(page: Page): Promise<void> {
  await page.evaluate(() => document.fonts.ready.then(() => undefined));
  await page.waitForFunction(
    () =>
      document.getAnimations().filter((a) => {
        const timing = a.effect?.getComputedTiming();
        return a.playState === "running" && timing !== undefined && timing.iterations !== Infinity;
      }).length === 0,
    undefined,
    { polling: "raf" },
  );
}

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page once it holds still (see settle);
 * returns the violations. axe goes in through the DevTools protocol (page.evaluate), which the
 * console's Content-Security-Policy does not govern, so pages are checked under their real policy.
 * Fluent UI's focus manager (tabster) puts aria-hidden `<i tabindex="0" data-tabster-dummy>`
 * sentinels around groups to move focus on Tab; they never keep focus, and Fluent's own
 * accessibility tests leave them out the same way.
 */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await settle(page);
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const w = window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: AxeViolation[] }> } };
    const r = await w.axe.run({ include: [document], exclude: [["[data-tabster-dummy]"]] } as unknown as Document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
}

export function describeViolations(v: AxeViolation[]): string {
  return v.map((x) => `${x.id} (${x.impact}): ${x.help}\n${x.nodes.map((n) => `  ${n.target.join(" ")}: ${n.failureSummary ?? ""}`).join("\n")}`).join("\n");
}

/**
 * axe-core on the page in the state named by `state` (for example "Create Cloud Management Gateway
 * wizard, General page, dialog open"): "" when it passes, else one block naming the page (its
 * path), the state, and each rule with its impact and the elements that break it.
 */
export async function accessibilityFailures(page: Page, state: string): Promise<string> {
  const v = await axe(page);
  if (v.length === 0) return "";
  return `${new URL(page.url()).pathname} — ${state}:\n${describeViolations(v)}`;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * What hides the page's content (`main`, or what `selector` names) from assistive technology while
 * no dialog is open: elements around it with aria-hidden="true" or inert (a modal dialog's focus trap leaves them on the
 * app root when the dialog goes away while open, and axe and screen readers then see nothing).
 * Waits (bounded by `timeoutMs`) for a dialog's own clean-up, which runs after its last frame;
 * "" when nothing hides the content, else the elements that still do.
 */
export async function contentHiddenAfterDialog(page: Page, selector = "main", timeoutMs = 10_000): Promise<string> {
  const hiding = () =>
    page.evaluate((sel) => {
      const main = document.querySelector(sel);
      if (!main) return [`no ${sel} element`];
      const out: string[] = [];
      for (let el: Element | null = main; el; el = el.parentElement) {
        if (el.getAttribute("aria-hidden") === "true" || el.hasAttribute("inert")) out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""} (${el.getAttribute("aria-hidden") === "true" ? "aria-hidden" : "inert"})`);
      }
      return out;
    }, selector);
  try {
    await page.waitForFunction(
      (sel) => {
        if (document.querySelector('[role="dialog"], [role="alertdialog"]')) return false;
        for (let el: Element | null = document.querySelector(sel); el; el = el.parentElement) if (el.getAttribute("aria-hidden") === "true" || el.hasAttribute("inert")) return false;
        return document.querySelector(sel) !== null;
      },
      selector,
      { timeout: timeoutMs },
    );
    return "";
  } catch {
    return `the page's content stays hidden from assistive technology: ${(await hiding()).join(", ") || "a dialog is still open"}`;
  }
}
