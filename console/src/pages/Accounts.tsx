/** Administration > Security > Accounts: stored once, referenced by proxies; secrets never shown. */
import { useState, type FormEvent } from "react";
import { Field, Input, MessageBar, MessageBarBody, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, type Account } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { SetPasswordDialog } from "./AccountPassword.tsx";

export function AccountsPage() {
  const accounts = useGet<Account[]>("/api/v1/accounts");
  const [name, setName] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [removeError, setRemoveError] = useState<Error>();
  const [passwordFor, setPasswordFor] = useState<Account>();
  const [done, setDone] = useState<string>();
  const add = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/accounts", { name, username, password });
      setName("");
      setUsername("");
      setPassword("");
      setErrors({});
      accounts.reload();
    } catch (err) {
      setErrors(fieldErrors(err, ["name", "username", "password"], { name: "Account name", username: "User name", password: "Password" }));
    }
  };
  const remove = async (a: Account) => {
    try {
      await api("DELETE", `/api/v1/accounts/${encodeURIComponent(a.name)}`);
      setRemoveError(undefined);
      accounts.reload();
    } catch (err) {
      setRemoveError(err as Error);
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <>
      <PageTitle>Accounts</PageTitle>
      <ErrorBar error={removeError} />
      {done && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>{done}</MessageBarBody>
        </MessageBar>
      )}
      <SetPasswordDialog
        account={passwordFor}
        onClose={() => setPasswordFor(undefined)}
        onSaved={(m) => {
          setPasswordFor(undefined);
          setDone(m);
          accounts.reload();
        }}
      />
      <Show l={accounts} what="Accounts">
        {(list) => (
          <Table aria-label="Accounts" size="small">
            <TableHeader>
              <TableRow>
                <TableHeaderCell>Account name</TableHeaderCell>
                <TableHeaderCell>User name</TableHeaderCell>
                <TableHeaderCell>Actions</TableHeaderCell>
              </TableRow>
            </TableHeader>
            <TableBody>
              {list.map((a) => (
                <TableRow key={a.name}>
                  <TableCell>{a.name}</TableCell>
                  <TableCell>{a.username}</TableCell>
                  <TableCell>
                    <ChangeButton size="small" onClick={() => { setDone(undefined); setPasswordFor(a); }} aria-label={`Set password of ${a.name}`}>
                      Set password
                    </ChangeButton>{" "}
                    <ChangeButton size="small" onClick={() => void remove(a)} aria-label={`Delete ${a.name}`}>
                      Delete
                    </ChangeButton>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </Show>
      <h2 style={{ fontSize: 18 }}>Create Account</h2>
      <form onSubmit={(e) => void add(e)} style={{ display: "grid", gap: 8, maxWidth: 420 }}>
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Field label="Account name" {...v("name")}>
          <Input value={name} onChange={(_, d) => setName(d.value)} />
        </Field>
        <Field label="User name" {...v("username")}>
          <Input value={username} onChange={(_, d) => setUsername(d.value)} autoComplete="off" />
        </Field>
        <Field label="Password" {...v("password")}>
          <Input type="password" value={password} onChange={(_, d) => setPassword(d.value)} autoComplete="new-password" />
        </Field>
        <div>
          <ChangeButton appearance="primary" type="submit">
            Create
          </ChangeButton>
        </div>
      </form>
    </>
  );
}
