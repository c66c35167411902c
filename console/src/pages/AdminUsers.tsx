/**
 * Administration > Security > Administrative Users: the security roles of directory users (the
 * name claim's value) and groups (a groups claim value), and of the named admin tokens. Changing
 * them needs a Full Administrator.
 */
import { useState, type FormEvent } from "react";
import { Dropdown, Field, Input, Option } from "@fluentui/react-components";
import { api, ROLE_LABELS, type AdminRole, type AdminToken, type AdminUser } from "../api.ts";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";

const ROLES = Object.keys(ROLE_LABELS) as AdminRole[];

export function AdminUsersPage() {
  const users = useGet<AdminUser[]>("/api/v1/admin-users");
  const tokens = useGet<AdminToken[]>("/api/v1/admin-tokens");
  const [kind, setKind] = useState<"user" | "group">("user");
  const [value, setValue] = useState("");
  const [role, setRole] = useState<AdminRole>("read-only-analyst");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [actionError, setActionError] = useState<Error>();
  const add = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/admin-users", { kind, value, role });
      setValue("");
      setErrors({});
      users.reload();
    } catch (err) {
      setErrors(fieldErrors(err, ["kind", "value", "role"], { kind: "Kind", value: "Name or group (the claim's value)", role: "Security role" }));
    }
  };
  const remove = async (u: AdminUser) => {
    try {
      await api("DELETE", `/api/v1/admin-users/${u.kind}/${encodeURIComponent(u.value)}`);
      setActionError(undefined);
      users.reload();
    } catch (err) {
      setActionError(err as Error);
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <>
      <PageTitle>Administrative Users</PageTitle>
      <ErrorBar error={actionError} />
      <h2 style={{ fontSize: 18 }}>Directory users and groups</h2>
      <Show l={users} what="Administrative users">
        {(list) => (
          <DataTable
            label="Directory users and groups"
            rows={list}
            rowKey={(u) => `${u.kind}/${u.value}`}
            initialSort={{ column: "value", direction: "ascending" }}
            empty="No directory user or group has a role yet."
            columns={[
              { id: "kind", label: "Kind", text: (u) => (u.kind === "user" ? "User" : "Group"), filter: true, width: "14%" },
              { id: "value", label: "Name or group", text: (u) => u.value, width: "40%" },
              { id: "role", label: "Security role", text: (u) => ROLE_LABELS[u.role], filter: true, width: "28%" },
              {
                id: "actions",
                label: "Actions",
                text: () => "",
                render: (u) => (
                  <ChangeButton need="security" size="small" onClick={() => void remove(u)} aria-label={`Remove ${u.value}`}>
                    Remove
                  </ChangeButton>
                ),
                unsortable: true,
                width: "18%",
              },
            ]}
          />
        )}
      </Show>
      <h2 style={{ fontSize: 18 }}>Add a user or group</h2>
      <form onSubmit={(e) => void add(e)} style={{ display: "grid", gap: 8, maxWidth: 420 }}>
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Field label="Kind" {...v("kind")}>
          <Dropdown value={kind === "user" ? "User" : "Group"} selectedOptions={[kind]} onOptionSelect={(_, d) => setKind(d.optionValue as "user" | "group")}>
            <Option value="user">User</Option>
            <Option value="group">Group</Option>
          </Dropdown>
        </Field>
        <Field label="Name or group (the claim's value)" {...v("value")}>
          <Input value={value} onChange={(_, d) => setValue(d.value)} />
        </Field>
        <Field label="Security role" {...v("role")}>
          <Dropdown value={ROLE_LABELS[role]} selectedOptions={[role]} onOptionSelect={(_, d) => setRole(d.optionValue as AdminRole)}>
            {ROLES.map((r) => (
              <Option key={r} value={r}>
                {ROLE_LABELS[r]}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <div>
          <ChangeButton need="security" appearance="primary" type="submit">
            Add
          </ChangeButton>
        </div>
      </form>
      <h2 style={{ fontSize: 18 }}>Named admin tokens</h2>
      <Show l={tokens} what="Admin tokens">
        {(list) => (
          <DataTable
            label="Named admin tokens"
            rows={list}
            rowKey={(t) => t.name}
            initialSort={{ column: "name", direction: "ascending" }}
            columns={[
              { id: "name", label: "Name", text: (t) => t.name, width: "40%" },
              { id: "role", label: "Security role", text: (t) => ROLE_LABELS[t.role], filter: true, width: "30%" },
              { id: "state", label: "State", text: (t) => (t.revokedAt ? `Revoked ${new Date(t.revokedAt).toLocaleString()}` : "Active"), sortValue: (t) => t.revokedAt ?? "", width: "30%" },
            ]}
          />
        )}
      </Show>
    </>
  );
}
