/**
 * Administration > Security > Server Join Tokens, as `opencmg server join-token create|list|revoke`:
 * a one-time token with which a site system server joins the site, shown once with a Copy button,
 * the site CA's SHA-256 to pin and the command the server's administrator runs; the list (never the
 * tokens) with Revoke after a dialog. Tokens are a Full Administrator's (security).
 */
import { useState } from "react";
import { Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Dropdown, Field, Input, MessageBar, MessageBarBody, MessageBarTitle, Option } from "@fluentui/react-components";
import { api, type Server, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, errorOf, fieldErrors, localTime, useGet } from "../ui.tsx";

type JoinToken = Shape<"JoinToken">;
type NewJoinToken = Shape<"NewJoinToken">;

const LABELS: Record<string, string> = { server: "Server", lifetimeMinutes: "Lifetime (minutes)", lifetime: "Lifetime (minutes)" };
const numberOrText = (v: string): number | string => (/^\s*\d+\s*$/.test(v) ? Number(v) : v);

export function JoinTokensPage() {
  const list = useGet<JoinToken[]>("/api/v1/join-tokens");
  const servers = useGet<Server[]>("/api/v1/servers");
  const [server, setServer] = useState("");
  const [lifetime, setLifetime] = useState("60");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [created, setCreated] = useState<NewJoinToken>();
  const [copied, setCopied] = useState(false);
  const [revoking, setRevoking] = useState<JoinToken>();
  const [revokeError, setRevokeError] = useState<Error>();

  const create = async () => {
    if (!server) return setErrors({ server: "Server: choose the server that joins" });
    try {
      setCreated(await api<NewJoinToken>("POST", `/api/v1/servers/${encodeURIComponent(server)}/join-tokens`, { lifetimeMinutes: numberOrText(lifetime) }));
      setCopied(false);
      setErrors({});
      list.reload();
    } catch (err) {
      const f = fieldErrors(err, Object.keys(LABELS), LABELS);
      setErrors({ ...f, ...(f.lifetime ? { lifetimeMinutes: f.lifetime } : {}) });
    }
  };
  const revoke = async () => {
    if (!revoking) return;
    try {
      await api("DELETE", `/api/v1/join-tokens/${encodeURIComponent(revoking.id)}`);
      setRevokeError(undefined);
      setRevoking(undefined);
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

  return (
    <>
      <PageTitle>Server Join Tokens</PageTitle>
      <p style={{ margin: "0 0 12px", maxWidth: 760 }}>
        A join token lets a site system server join the site once: it makes its own key and gets its certificate from the site CA. The site does not keep the token: it is shown once, when it is created.
      </p>
      <Show l={list} what="Join tokens">
        {(rows) => (
          <DataTable
            label="Join tokens"
            rows={rows}
            rowKey={(t) => t.id}
            initialSort={{ column: "created", direction: "descending" }}
            empty="No join token."
            columns={[
              { id: "id", label: "Token ID", text: (t) => t.id, truncate: true, width: "20%" },
              { id: "server", label: "Server", text: (t) => t.server, filter: true, width: "16%" },
              { id: "state", label: "State", text: (t) => t.state, filter: true, width: "9%" },
              { id: "created", label: "Created", text: (t) => localTime(t.createdAt), sortValue: (t) => t.createdAt, width: "14%" },
              { id: "expires", label: "Expires", text: (t) => localTime(t.expiresAt), sortValue: (t) => t.expiresAt, width: "14%" },
              { id: "used", label: "Joined", text: (t) => localTime(t.usedAt), sortValue: (t) => t.usedAt ?? "", width: "14%" },
              {
                id: "actions",
                label: "Actions",
                text: () => "",
                unsortable: true,
                width: "13%",
                render: (t) => (
                  <ChangeButton need="security" size="small" disabled={t.state === "revoked" || t.state === "expired"} onClick={() => setRevoking(t)} aria-label={`Revoke ${t.id}`}>
                    Revoke
                  </ChangeButton>
                ),
              },
            ]}
          />
        )}
      </Show>
      <h2 style={{ fontSize: 18 }}>Create Join Token</h2>
      {created && (
        <MessageBar intent="success" layout="multiline" role="status">
          <MessageBarBody>
            <MessageBarTitle>Join token {created.id} created for {created.server}</MessageBarTitle>
            Valid until {localTime(created.expiresAt)}, for one join. Copy it now: it is not shown again. On {created.server}, the server's administrator runs (the token on standard input):
            <pre style={{ whiteSpace: "pre-wrap", overflowWrap: "anywhere" }}>{`opencmg server join --site https://SITE:8241 --site-ca-sha256 ${created.siteCaSha256} --token -`}</pre>
            <div style={{ display: "grid", gap: 8, marginTop: 8 }}>
              <Field label="Site CA SHA-256 (to pin)">
                <Input readOnly value={created.siteCaSha256} />
              </Field>
              <div style={{ display: "flex", gap: 8, alignItems: "end" }}>
                <Field label="Join token" style={{ flex: 1 }} hint={copied ? "Copied." : undefined}>
                  <Input readOnly value={created.token} onFocus={(e) => e.currentTarget.select()} />
                </Field>
                <Button onClick={() => void copy()}>Copy</Button>
                <Button onClick={() => setCreated(undefined)}>Done</Button>
              </div>
            </div>
          </MessageBarBody>
        </MessageBar>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
        style={{ display: "grid", gap: 8, maxWidth: 420 }}
        aria-label="Create Join Token"
      >
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Field label={LABELS.server} {...errorOf(errors, "server")}>
          <Dropdown value={server} selectedOptions={server ? [server] : []} onOptionSelect={(_, d) => setServer(d.optionValue ?? "")}>
            {(servers.data ?? []).map((s) => (
              <Option key={s.fqdn} value={s.fqdn}>
                {s.fqdn}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label={LABELS.lifetimeMinutes} hint="1 to 10080 (7 days); the default 60 is an hour." {...errorOf(errors, "lifetimeMinutes")}>
          <Input inputMode="numeric" value={lifetime} onChange={(_, d) => setLifetime(d.value)} />
        </Field>
        <div>
          <ChangeButton need="security" appearance="primary" type="submit">
            Create
          </ChangeButton>
        </div>
      </form>
      {revoking && (
        <Dialog open onOpenChange={(_, d) => !d.open && setRevoking(undefined)} modalType="alert">
          <DialogSurface>
            <DialogBody>
              <DialogTitle>Revoke join token {revoking.id}</DialogTitle>
              <DialogContent>
                <p>
                  {revoking.state === "joined"
                    ? `${revoking.server} joined with this token: revoked, the site answers it no configuration any more.`
                    : `Unused, the token joins nothing once revoked: ${revoking.server} needs a new one.`}
                </p>
                <ErrorBar error={revokeError} />
              </DialogContent>
              <DialogActions>
                <ChangeButton need="security" appearance="primary" onClick={() => void revoke()}>
                  Revoke
                </ChangeButton>
                <Button onClick={() => setRevoking(undefined)}>Cancel</Button>
              </DialogActions>
            </DialogBody>
          </DialogSurface>
        </Dialog>
      )}
    </>
  );
}
