/**
 * What the console's browser tests share: a loopback-only browser context, the Workspaces
 * navigation, the message a field's error is tied to, directory sign-in through the provider's own
 * pages, a change forced through the API with the console's session, the checks that a role's
 * change controls are disabled with the reason, and axe-core findings gathered across states.
 */
import assert from "node:assert/strict";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { accessibilityFailures } from "./browser.ts";

/**
 * A new browser context that reaches loopback only: a provider's pages would fetch a web font from
 * the internet. Each wait for an element is bounded at 2 minutes rather than 30 s: a busy CI machine
 * is slow, and only a broken page ever waits that long.
 */
export async function loopbackContext(browser: Browser, viewport = { width: 1280, height: 1000 }): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(120_000);
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (r) => r.abort());
  return context;
}

/** A node of the Workspaces navigation (the Administration and Monitoring CMG nodes share a label: .first() / .nth(1)). */
export const nav = (page: Page, label: string): Locator => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: label, exact: true });

/** The validation message Fluent's Field ties to a control (aria-describedby), or "". */
export async function messageOf(page: Page, control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

/** axe-core in each state a test visits; all findings reported together at the end. */
export class A11yLog {
  readonly failures: string[] = [];
  async check(page: Page, state: string): Promise<void> {
    const f = await accessibilityFailures(page, state);
    if (f) this.failures.push(f);
  }
  assertNone(): void {
    assert.equal(this.failures.join("\n\n"), "", "axe-core found violations");
  }
}

/**
 * Signs in at the console with the directory, through the provider's own login and consent pages
 * (test/helpers/oidc-admin-provider.ts: any password). `onSignInPage` runs on the console's
 * sign-in page before the click (an accessibility check, a screenshot).
 */
export async function directorySignIn(page: Page, consoleUrl: string, login: string, onSignInPage?: (page: Page) => Promise<void>): Promise<void> {
  await page.goto(consoleUrl);
  const link = page.getByRole("link", { name: "Sign in with the directory" });
  await link.waitFor();
  await onSignInPage?.(page);
  await link.click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await nav(page, "Sites").waitFor();
}

/** A change the console's own session makes with its CSRF header, as a click on a disabled button would. */
export async function forcedChange(page: Page, method: string, path: string, body?: unknown): Promise<{ status: number; code: string }> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const s = (await (await fetch("/api/v1/session")).json()) as { csrfToken: string };
      const headers: Record<string, string> = { "x-opencmg-csrf": s.csrfToken };
      if (body !== undefined) headers["content-type"] = "application/json";
      const r = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await r.text();
      let code = "";
      try {
        code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? "";
      } catch {
        // Not JSON: the status alone says what happened.
      }
      return { status: r.status, code };
    },
    { method, path, body },
  );
}

/**
 * Asserts that `control` (a button, a checkbox) is disabled for the signed-in role and points at
 * the frame's note (aria-describedby) whose text matches `reason`, with the same reason as its title.
 */
export async function assertChangeDisabled(page: Page, control: Locator, what: string, reason: RegExp): Promise<void> {
  await control.waitFor();
  assert.equal(await control.isDisabled(), true, `${what} is disabled`);
  assert.match((await control.getAttribute("title")) ?? "", reason, `${what}: its title gives the reason`);
  const describedBy = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter((id) => id.startsWith("change-reason"));
  assert.ok(describedBy.length > 0, `${what} points at the reason (aria-describedby)`);
  assert.match((await page.locator(`[id="${describedBy[0]}"]`).textContent()) ?? "", reason, `${what}: the note it points at gives the reason`);
}

/** Every control on the page guarded by a role (pointing at the reason note) is disabled; returns how many there are. */
export async function assertEveryGuardedControlDisabled(page: Page, where: string): Promise<number> {
  const guarded = page.locator('[aria-describedby^="change-reason"]');
  const n = await guarded.count();
  for (let i = 0; i < n; i++) assert.equal(await guarded.nth(i).isDisabled(), true, `${where}: guarded control ${i} is disabled`);
  return n;
}

/**
 * The names (aria-label, else text) of the buttons a person can press on the page, tabs and
 * drop-downs left out: for a role that reads only, each must be one that changes nothing.
 */
export async function enabledButtonNames(page: Page): Promise<string[]> {
  return page.locator('button:not([disabled]):not([role="tab"]):not([role="combobox"]):not([aria-disabled="true"])').evaluateAll((els) =>
    els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => (e.getAttribute("aria-label") ?? e.textContent ?? "").trim()),
  );
}
