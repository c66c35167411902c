/**
 * Administration > Security > Bulk Registration Tokens, as `opencmg token create-bulk|list-bulk|
 * revoke-bulk`: create one (lifetime, most devices), shown this once with a Copy button and kept
 * only in this page's memory until Done; the list (never the tokens); Revoke. Security changes:
 * a Full Administrator's.
 */
import { useState, type FormEvent } from "react";
import { Button, Field, Input, MessageBar, MessageBarBody, MessageBarTitle } from "@fluentui/react-components";
import { api } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, localTime, useGet } from "../ui.tsx";

/** `GET /api/v1/tokens/bulk`'s rows (`S.bulkToken`); kept here so api.ts stays as its owner generates it. */
export interface BulkToken {
  id: string;
  state: "active" | "used" | "revoked" | "expired";
  devices: number;
  maxUses: number | null;
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}
interface CreatedBulkToken {
  id: string;
  token: string;
  expiresAt: string;
  maxUses: number | null;
}

const LABELS: Record<string, string> = {
  lifetimeMinutes: "Lifetime (minutes)",
  lifetime: "Lifetime (minutes)",
  maxUses: "Maximum number of devices",
};
const numberOrText = (v: string): number | string => (/^\s*\d+\s*$/.test(v) ? Number(v) : v);

export function BulkTokensPage() {
  const list = useGet<BulkToken[]>("/api/v1/tokens/bulk");
  const [lifetime, setLifetime] = useState("4320");
  const [max, setMax] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [created, setCreated] = useState<CreatedBulkToken>();
  const [copied, setCopied] = useState(false);
  const [revokeError, setRevokeError] = useState<Error>();

  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const body = { lifetimeMinutes: numberOrText(lifetime), ...(max.trim() ? { maxUses: numberOrText(max) } : {}) };
      setCreated(await api<CreatedBulkToken>("POST", "/api/v1/tokens/bulk", body));
      setCopied(false);
      setErrors({});
      list.reload();
    } catch (err) {
      const f = fieldErrors(err, Object.keys(LABELS), LABELS);
      // The route names lifetimeMinutes, the service lifetime: one field either way.
      setErrors({ ...f, ...(f.lifetime ? { lifetimeMinutes: f.lifetime } : {}) });
    }
  };
  const revoke = async (t: BulkToken) => {
    try {
      await api("DELETE", `/api/v1/tokens/bulk/${encodeURIComponent(t.id)}`);
      setRevokeError(undefined);
      list.reload();
    } catch (err) {
      setRevokeError(err as Error);
    }
  };
  const copy = async () => {
    if (!created) return;
    await navigator.clipboard.writeText(created.token);
    setCopied(true);
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });

  return (
    <>
      <PageTitle>Bulk Registration Tokens</PageTitle>
      <p style={{ margin: "0 0 12px", maxWidth: 760 }}>
        A bulk registration token registers devices without a client certificate while it is valid, each device once. The site does not keep the token: it is shown once, when it is created.
      </p>
      <ErrorBar error={revokeError} />
      <Show l={list} what="Bulk registration tokens">
        {(rows) => (
          <DataTable
            label="Bulk registration tokens"
            rows={rows}
            rowKey={(t) => t.id}
            initialSort={{ column: "created", direction: "descending" }}
            empty="No bulk registration token."
            columns={[
              { id: "id", label: "Token ID", text: (t) => t.id, truncate: true, width: "22%" },
              { id: "state", label: "State", text: (t) => t.state, filter: true, width: "9%" },
              { id: "devices", label: "Devices registered", text: (t) => String(t.devices), sortValue: (t) => t.devices, width: "10%" },
              { id: "max", label: "Maximum devices", text: (t) => (t.maxUses === null ? "Any number" : String(t.maxUses)), sortValue: (t) => t.maxUses ?? Number.MAX_SAFE_INTEGER, width: "10%" },
              { id: "created", label: "Created", text: (t) => localTime(t.createdAt), sortValue: (t) => t.createdAt, width: "14%" },
              { id: "expires", label: "Expires", text: (t) => localTime(t.expiresAt), sortValue: (t) => t.expiresAt, width: "14%" },
              { id: "last", label: "Last used", text: (t) => localTime(t.lastUsedAt), sortValue: (t) => t.lastUsedAt ?? "", width: "12%" },
              {
                id: "actions",
                label: "Actions",
                text: () => "",
                unsortable: true,
                width: "9%",
                render: (t) => (
                  <ChangeButton need="security" size="small" disabled={t.state !== "active"} onClick={() => void revoke(t)} aria-label={`Revoke ${t.id}`}>
                    Revoke
                  </ChangeButton>
                ),
              },
            ]}
          />
        )}
      </Show>
      <h2 style={{ fontSize: 18 }}>Create Bulk Registration Token</h2>
      {created && (
        <MessageBar intent="success" layout="multiline" role="status">
          <MessageBarBody>
            <MessageBarTitle>Token {created.id} created</MessageBarTitle>
            Valid until {localTime(created.expiresAt)}, for {created.maxUses === null ? "any number of devices" : `at most ${created.maxUses} devices`}. Copy it now: it is not shown again. Give it to the device installer (<code>opencmg client install --token</code>).
            <div style={{ display: "flex", gap: 8, alignItems: "end", marginTop: 8 }}>
              <Field label="Bulk registration token" style={{ flex: 1 }} hint={copied ? "Copied." : undefined}>
                <Input readOnly value={created.token} onFocus={(e) => e.currentTarget.select()} />
              </Field>
              <Button onClick={() => void copy()}>Copy</Button>
              <Button onClick={() => setCreated(undefined)}>Done</Button>
            </div>
          </MessageBarBody>
        </MessageBar>
      )}
      <form onSubmit={(e) => void create(e)} style={{ display: "grid", gap: 8, maxWidth: 420 }} aria-label="Create Bulk Registration Token">
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Field label={LABELS.lifetimeMinutes} hint="1 to 10080 (7 days); the default 4320 is 3 days." {...v("lifetimeMinutes")}>
          <Input inputMode="numeric" value={lifetime} onChange={(_, d) => setLifetime(d.value)} />
        </Field>
        <Field label={LABELS.maxUses} hint="1 to 1000000; empty: any number until it expires or is revoked." {...v("maxUses")}>
          <Input inputMode="numeric" value={max} onChange={(_, d) => setMax(d.value)} />
        </Field>
        <div>
          <ChangeButton need="security" appearance="primary" type="submit">
            Create
          </ChangeButton>
        </div>
      </form>
    </>
  );
}
