/**
 * The signed-in administrator's role in the console: change buttons their role does not permit are
 * disabled, each pointing (aria-describedby, title) at the reason the frame shows. The API refuses
 * such a change with 403 all the same; this only says so before the click.
 */
import { createContext, useContext, type ComponentProps } from "react";
import { Button, ToolbarButton } from "@fluentui/react-components";
import type { Me, Permission } from "./api.ts";

export const MeContext = createContext<Me | undefined>(undefined);

/** The id of the frame's note saying why changes are turned off. */
export const CHANGE_REASON_ID = "change-reason";

export function reasonFor(me: Me | undefined, need: Permission): string | undefined {
  if (!me || me.permissions.includes(need)) return undefined;
  return need === "security"
    ? `${me.name} is a ${me.roleLabel}: only a Full Administrator changes tokens, administrative users, directory sign-in and client computer communication.`
    : `${me.name} is a ${me.roleLabel}: this role reads only; changes are turned off.`;
}

/** Whether the signed-in role may make changes that need `need`, and why not. */
export function useCan(need: Permission = "infrastructure"): { allowed: boolean; reason: string | undefined } {
  const reason = reasonFor(useContext(MeContext), need);
  return { allowed: reason === undefined, reason };
}

type Need = { need?: Permission };

function guard(need: Permission, disabled: boolean | undefined, reason: string | undefined) {
  return reason === undefined ? { disabled } : { disabled: true, title: reason, "aria-describedby": `${CHANGE_REASON_ID}-${need}` };
}

/**
 * The props that turn off a control which changes the site at once (a checkbox that saves as it
 * is ticked), with the reason, for a role that may not: as ChangeButton does for a button.
 */
export function useChangeGuard(need: Permission = "infrastructure", disabled?: boolean) {
  const { reason } = useCan(need);
  return guard(need, disabled, reason);
}

/** A button that changes the site: disabled, with the reason, for a role that may not. */
export function ChangeButton({ need = "infrastructure", disabled, ...props }: ComponentProps<typeof Button> & Need) {
  const { reason } = useCan(need);
  return <Button {...props} {...guard(need, disabled as boolean | undefined, reason)} />;
}

export function ChangeToolbarButton({ need = "infrastructure", disabled, ...props }: ComponentProps<typeof ToolbarButton> & Need) {
  const { reason } = useCan(need);
  return <ToolbarButton {...props} {...guard(need, disabled as boolean | undefined, reason)} />;
}

/** The frame's notes (one per permission the role lacks) that the disabled buttons point at. */
export function ChangeReasons() {
  const me = useContext(MeContext);
  if (!me) return null;
  const lacking = (["infrastructure", "security"] as const).filter((p) => !me.permissions.includes(p));
  return (
    <>
      {lacking.map((p) => (
        <p key={p} id={`${CHANGE_REASON_ID}-${p}`} style={p === "security" && lacking.length > 1 ? { display: "none" } : { margin: "0 0 12px" }} role="note">
          {reasonFor(me, p)}
        </p>
      ))}
    </>
  );
}
