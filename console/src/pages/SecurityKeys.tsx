/**
 * Administration > Security > Signing Keys and Certificates, as `opencmg token signing-keys|
 * rotate-signing-key`, `opencmg cmg settings-keys|rotate-settings-key` and `opencmg connection-point
 * certificates|revoke`: the keys by ID, state and dates, never their material; a
 * rotation or a revocation only after a dialog says what it does. Token signing keys are a Full
 * Administrator's (security); settings keys and connection point certificates, like the routes, need
 * infrastructure.
 */
import { useState, type ReactNode } from "react";
import { Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Input } from "@fluentui/react-components";
import { api, type Permission, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, errorOf, fieldErrors, localTime, type Loaded, useGet } from "../ui.tsx";

type SigningKey = Shape<"SigningKey">;
type CpCert = Shape<"ConnectionPointCert">;

const STATE_ORDER = { current: 0, previous: 1, retired: 2 } as const;

/** A change confirmed in an alert dialog first: `body` says what it does. */
function Confirm({ title, action, need, body, onConfirm, onClose, children }: { title: string; action: string; need: Permission; body: ReactNode; onConfirm: () => Promise<void>; onClose: () => void; children?: ReactNode }) {
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()} modalType="alert">
      <DialogSurface>
        <DialogBody>
          <DialogTitle>{title}</DialogTitle>
          <DialogContent>
            {body}
            {children}
          </DialogContent>
          <DialogActions>
            <ChangeButton need={need} appearance="primary" disabled={busy} onClick={() => void go()}>
              {action}
            </ChangeButton>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

function KeySection(p: { title: string; label: string; list: Loaded<SigningKey[]>; rotatePath: string; need: Permission; explain: string; rotation: string }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<Error>();
  const rotate = async () => {
    try {
      await api("POST", p.rotatePath, {});
      setError(undefined);
      setOpen(false);
      p.list.reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <section aria-label={p.title}>
      <h2 style={{ fontSize: 18 }}>{p.title}</h2>
      <p style={{ margin: "0 0 8px", maxWidth: 760 }}>{p.explain}</p>
      {!open && <ErrorBar error={error} />}
      <Show l={p.list} what={p.label}>
        {(rows) => (
          <DataTable
            label={p.label}
            rows={rows}
            rowKey={(k) => k.kid}
            initialSort={{ column: "state", direction: "ascending" }}
            empty="No key yet."
            columns={[
              { id: "kid", label: "Key ID", text: (k) => k.kid, width: "40%" },
              { id: "alg", label: "Algorithm", text: (k) => k.alg, width: "10%" },
              { id: "state", label: "State", text: (k) => k.state, sortValue: (k) => STATE_ORDER[k.state], filter: true, width: "12%" },
              { id: "created", label: "Created", text: (k) => localTime(k.createdAt), sortValue: (k) => k.createdAt, width: "19%" },
              { id: "retired", label: "Retired", text: (k) => localTime(k.retiredAt), sortValue: (k) => k.retiredAt ?? "", width: "19%" },
            ]}
          />
        )}
      </Show>
      <div style={{ marginTop: 8 }}>
        <ChangeButton need={p.need} onClick={() => setOpen(true)}>
          Rotate {p.label.toLowerCase().replace(/s$/, "")}
        </ChangeButton>
      </div>
      {open && (
        <Confirm title={`Rotate the ${p.label.toLowerCase().replace(/s$/, "")}`} action="Rotate" need={p.need} body={<p>{p.rotation}</p>} onConfirm={rotate} onClose={() => setOpen(false)}>
          <ErrorBar error={error} />
        </Confirm>
      )}
    </section>
  );
}

const REVOKE_LABELS: Record<string, string> = { reason: "Reason" };

function CpCertSection() {
  const list = useGet<CpCert[]>("/api/v1/connection-point-certificates");
  const [revoking, setRevoking] = useState<CpCert>();
  const [reason, setReason] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const revoke = async () => {
    if (!revoking) return;
    try {
      const body = { serial: revoking.serial, ...(reason.trim() ? { reason } : {}) };
      await api("POST", `/api/v1/servers/${encodeURIComponent(revoking.fqdn)}/connection-point-certificates/revoke`, body);
      setRevoking(undefined);
      setErrors({});
      list.reload();
    } catch (e) {
      setErrors(fieldErrors(e, ["reason"], REVOKE_LABELS));
    }
  };
  return (
    <section aria-label="Connection Point Certificates">
      <h2 style={{ fontSize: 18 }}>Connection Point Certificates</h2>
      <p style={{ margin: "0 0 8px", maxWidth: 760 }}>
        The tunnel certificates the site issued to CMG connection points. The CMG instances admit a connection point by its certificate while it is valid and not revoked.
      </p>
      <Show l={list} what="Connection point certificates">
        {(rows) => (
          <DataTable
            label="Connection point certificates"
            rows={rows}
            rowKey={(c) => c.serial}
            initialSort={{ column: "issued", direction: "descending" }}
            empty="No connection point certificate."
            columns={[
              { id: "server", label: "Server", text: (c) => c.fqdn, filter: true, width: "16%" },
              { id: "serial", label: "Serial number", text: (c) => c.serial, truncate: true, width: "16%" },
              { id: "spki", label: "Public key SHA-256", text: (c) => c.spki, truncate: true, width: "16%" },
              { id: "state", label: "State", text: (c) => c.state, filter: true, width: "8%" },
              { id: "issued", label: "Issued", text: (c) => localTime(c.issuedAt), sortValue: (c) => c.issuedAt, width: "12%" },
              { id: "notAfter", label: "Valid until", text: (c) => localTime(c.notAfter), sortValue: (c) => c.notAfter, width: "12%" },
              { id: "revoked", label: "Revoked", text: (c) => (c.revokedAt ? `${localTime(c.revokedAt)} (${c.revokedReason ?? ""})` : ""), sortValue: (c) => c.revokedAt ?? "", width: "12%" },
              {
                id: "actions",
                label: "Actions",
                text: () => "",
                unsortable: true,
                width: "8%",
                render: (c) => (
                  <ChangeButton
                    size="small"
                    disabled={c.state !== "valid"}
                    aria-label={`Revoke ${c.serial}`}
                    onClick={() => {
                      setReason("");
                      setErrors({});
                      setRevoking(c);
                    }}
                  >
                    Revoke
                  </ChangeButton>
                ),
              },
            ]}
          />
        )}
      </Show>
      {revoking && (
        <Confirm
          title={`Revoke the certificate of ${revoking.fqdn}`}
          action="Revoke"
          need="infrastructure"
          body={
            <p>
              Certificate {revoking.serial}: the CMG instances close this connection point's tunnels with the next settings push and refuse the certificate from then on. If the server keeps its connection point role, restart its connection point: it gets a new certificate.
            </p>
          }
          onConfirm={revoke}
          onClose={() => setRevoking(undefined)}
        >
          {errors.form && <ErrorBar error={new Error(errors.form)} />}
          <Field label={REVOKE_LABELS.reason} hint="Why, for the record (optional)." {...errorOf(errors, "reason")}>
            <Input value={reason} onChange={(_, d) => setReason(d.value)} />
          </Field>
        </Confirm>
      )}
    </section>
  );
}

export function SecurityKeysPage() {
  const tokenKeys = useGet<SigningKey[]>("/api/v1/tokens/signing-keys");
  const settingsKeys = useGet<SigningKey[]>("/api/v1/cmgs/settings-keys");
  return (
    <>
      <PageTitle>Signing Keys and Certificates</PageTitle>
      <p style={{ margin: "0 0 12px", maxWidth: 760 }}>The keys are listed by ID and state only: their private parts never leave the site.</p>
      <KeySection
        title="Token Signing Keys"
        label="Token signing keys"
        list={tokenKeys}
        rotatePath="/api/v1/tokens/signing-keys/rotate"
        need="security"
        explain="The site signs client tokens and registration tokens with the current key and accepts tokens of the current and previous keys."
        rotation="A new key becomes current and signs every token from now on. The current key becomes previous: tokens it signed stay accepted until the next rotation, so clients renew meanwhile. The previous key is retired: tokens it signed are refused."
      />
      <KeySection
        title="CMG Settings-Signing Keys"
        label="Settings-signing keys"
        list={settingsKeys}
        rotatePath="/api/v1/cmgs/settings-keys/rotate"
        need="infrastructure"
        explain="The CMG instances apply only settings these keys signed."
        rotation="A new key becomes current. The current key becomes previous and keeps signing beside it until the next rotation, so the instances learn the new key from a document the old one signed. The previous key is retired: the instances stop trusting it."
      />
      <CpCertSection />
    </>
  );
}
