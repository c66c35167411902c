/**
 * Accounts > Set password: the account's new password (and, if it changed too, its user name), as
 * `opencmg account set-password NAME --password-stdin` (PUT /api/v1/accounts/:name/password). The
 * password leaves the page's memory when the dialog closes; the site never returns it.
 */
import { useState, type FormEvent } from "react";
import { Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Input } from "@fluentui/react-components";
import { api, type Account } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, fieldErrors } from "../ui.tsx";

const LABELS = { username: "User name", password: "New password", confirm: "Confirm password" };

/**
 * Mounted all the time, opened for an account: Fluent's dialog then closes itself properly (an
 * unmounted open dialog leaves the page behind it hidden from assistive technology).
 */
export function SetPasswordDialog({ account, onClose, onSaved }: { account: Account | undefined; onClose: () => void; onSaved: (message: string) => void }) {
  return (
    <Dialog open={account !== undefined} onOpenChange={(_, d) => !d.open && onClose()}>
      <DialogSurface>{account && <SetPasswordForm key={account.name} account={account} onClose={onClose} onSaved={onSaved} />}</DialogSurface>
    </Dialog>
  );
}

function SetPasswordForm({ account, onClose, onSaved }: { account: Account; onClose: () => void; onSaved: (message: string) => void }) {
  const [username, setUsername] = useState(account.username);
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const save = async (e: FormEvent) => {
    e.preventDefault();
    // The one check the site cannot make: both typings agree (the site sees only one).
    if (password !== confirm) return setErrors({ confirm: `${LABELS.confirm}: must be the same as ${LABELS.password}` });
    try {
      await api("PUT", `/api/v1/accounts/${encodeURIComponent(account.name)}/password`, { password, ...(username.trim() !== account.username ? { username: username.trim() } : {}) });
      onSaved(`The password of ${account.name} is changed.`);
    } catch (err) {
      setErrors(fieldErrors(err, ["username", "password"], LABELS));
    }
  };
  const v = (f: keyof typeof LABELS) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <form onSubmit={(e) => void save(e)}>
      <DialogBody>
        <DialogTitle>Set password: {account.name}</DialogTitle>
        <DialogContent style={{ display: "grid", gap: 8 }}>
          {errors.form && <ErrorBar error={new Error(errors.form)} />}
          <Field label={LABELS.username} {...v("username")}>
            <Input value={username} onChange={(_, d) => setUsername(d.value)} autoComplete="off" />
          </Field>
          <Field label={LABELS.password} {...v("password")}>
            <Input type="password" value={password} onChange={(_, d) => setPassword(d.value)} autoComplete="new-password" />
          </Field>
          <Field label={LABELS.confirm} {...v("confirm")}>
            <Input type="password" value={confirm} onChange={(_, d) => setConfirm(d.value)} autoComplete="new-password" />
          </Field>
        </DialogContent>
        <DialogActions>
          <ChangeButton appearance="primary" type="submit">
            OK
          </ChangeButton>
          <Button onClick={onClose}>Cancel</Button>
        </DialogActions>
      </DialogBody>
    </form>
  );
}
