/**
 * A modal dialog hides the rest of the page from assistive technology while open (Fluent's focus
 * manager puts aria-hidden on the app's root). A dialog removed while open together with the page
 * around it (the session ends and sign-in replaces the whole console) is not closed first, and the
 * focus manager then leaves that aria-hidden behind: axe and screen readers see nothing. This puts
 * it right as soon as no dialog is left.
 */
const DIALOG = '[role="dialog"], [role="alertdialog"], [aria-modal="true"]';

export function keepRootVisibleWithoutDialogs(root: HTMLElement): () => void {
  const check = () => {
    if (root.getAttribute("aria-hidden") === "true" && !document.querySelector(DIALOG)) root.removeAttribute("aria-hidden");
  };
  // Dialogs come and go as children of the body (portals), and the focus manager writes aria-hidden late.
  const o = new MutationObserver(check);
  o.observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["aria-hidden", "role", "aria-modal"] });
  return () => o.disconnect();
}
