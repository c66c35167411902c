/**
 * Administration > Site Configuration > Sites: the hierarchy, and the site's settings (client
 * computer communication and the schedules): each site setting with its value, default and rule,
 * changed through PUT /api/v1/settings/:key; the site's message for a refused value shows next to it.
 */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Input, MessageBar, MessageBarBody, Tab, TabList, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, type SiteSetting as Setting, type Site } from "../api.ts";
import { ChangeButton, useChangeGuard } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";


export function SitesPage() {
  const sites = useGet<Site[]>("/api/v1/sites");
  const settings = useGet<Setting[]>("/api/v1/settings");
  return (
    <>
      <PageTitle>Sites</PageTitle>
      <Show l={sites} what="Sites">
        {(list) => (
          <Table aria-label="Sites" size="small">
            <TableHeader>
              <TableRow>
                <TableHeaderCell>Site code</TableHeaderCell>
                <TableHeaderCell>Site name</TableHeaderCell>
                <TableHeaderCell>Type</TableHeaderCell>
                <TableHeaderCell>Parent site</TableHeaderCell>
                <TableHeaderCell />
              </TableRow>
            </TableHeader>
            <TableBody>
              {list.map((s) => (
                <TableRow key={s.code}>
                  <TableCell>{s.code}</TableCell>
                  <TableCell>{s.name}</TableCell>
                  <TableCell>{s.type}</TableCell>
                  <TableCell>{s.parentCode ?? ""}</TableCell>
                  <TableCell>{s.type === "primary" && <SiteProperties code={s.code} />}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </Show>
      <h2 style={{ fontSize: 18 }}>Site properties: Client Computer Communication and schedules</h2>
      <Show l={settings} what="Site settings">
        {(list) => <SettingsForm list={list} reload={settings.reload} />}
      </Show>
    </>
  );
}

function SettingsForm({ list, reload }: { list: Setting[]; reload: () => void }) {
  return (
    <div style={{ display: "grid", gap: 8, maxWidth: 640 }}>
      {list.map((s) => (
        <SettingRow key={s.key} s={s} reload={reload} />
      ))}
    </div>
  );
}

function SettingRow({ s, reload }: { s: Setting; reload: () => void }) {
  const [value, setValue] = useState(s.value);
  const [saved, setSaved] = useState(false);
  const [error, setError] = useState<string>();
  const [saveError, setSaveError] = useState<Error>();
  const save = async () => {
    try {
      await api("PUT", `/api/v1/settings/${encodeURIComponent(s.key)}`, { value });
      setError(undefined);
      setSaveError(undefined);
      setSaved(true);
      reload();
    } catch (e) {
      setSaved(false);
      const f = fieldErrors(e, ["value", s.key]);
      setError(f.value ?? f[s.key]);
      if (f.form) setSaveError(new Error(f.form));
    }
  };
  return (
    <div style={{ display: "flex", gap: 8, alignItems: "end" }}>
      <Field
        label={s.key}
        hint={`${s.description} Default ${s.default}; ${s.rule}.`}
        validationMessage={error ?? (saved ? "Saved." : undefined)}
        validationState={error ? "error" : saved ? "success" : "none"}
        style={{ flex: 1 }}
      >
        <Input value={value} onChange={(_, d) => { setValue(d.value); setSaved(false); }} />
      </Field>
      <ChangeButton need={s.key.startsWith("oidc-") || s.key.startsWith("admin-oidc-") ? "security" : "infrastructure"} onClick={() => void save()} aria-label={`Save ${s.key}`}>
        Save
      </ChangeButton>
      <ErrorBar error={saveError} />
    </div>
  );
}

/** The site's Client Computer Communication settings (`S.clientCommunication`). */
interface ClientCommunication {
  usePkiClientCertificate: boolean;
  clientsCheckCrl: boolean;
}
type CommKey = keyof ClientCommunication;

/** The documents' words for each setting. */
export const CLIENT_COMMUNICATION_LABELS: Record<CommKey, string> = {
  usePkiClientCertificate: "Use PKI client certificate (client authentication capability) when available",
  clientsCheckCrl: "Clients check the certificate revocation list (CRL) for site systems",
};

/** A primary site's Properties: its Client Computer Communication tab (GET/PATCH /api/v1/sites/:code/client-communication). */
function SiteProperties({ code }: { code: string }) {
  const [open, setOpen] = useState(false);
  return (
    <Dialog open={open} onOpenChange={(_, d) => setOpen(d.open)}>
      <Button size="small" onClick={() => setOpen(true)} aria-label={`Properties of site ${code}`}>
        Properties
      </Button>
      <DialogSurface aria-label={`Properties of site ${code}`}>
        <DialogBody>
          <DialogTitle>Site {code} Properties</DialogTitle>
          <DialogContent>
            <TabList selectedValue="comm">
              <Tab value="comm">Client Computer Communication</Tab>
            </TabList>
            {open && <ClientCommunicationTab code={code} close={() => setOpen(false)} />}
          </DialogContent>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

function ClientCommunicationTab({ code, close }: { code: string; close: () => void }) {
  const current = useGet<ClientCommunication>(`/api/v1/sites/${encodeURIComponent(code)}/client-communication`);
  return (
    <Show l={current} what="Client computer communication">
      {(c) => <ClientCommunicationForm code={code} initial={c} close={close} />}
    </Show>
  );
}

function ClientCommunicationForm({ code, initial, close }: { code: string; initial: ClientCommunication; close: () => void }) {
  const [pki, setPki] = useState(initial.usePkiClientCertificate);
  const [crl, setCrl] = useState(initial.clientsCheckCrl);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  // A Full Administrator's change: turning these off weakens how clients trust site systems.
  const guard = useChangeGuard("security");
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    try {
      await api("PATCH", `/api/v1/sites/${encodeURIComponent(code)}/client-communication`, { usePkiClientCertificate: pki, clientsCheckCrl: crl });
      setErrors({});
      setSaved(true);
    } catch (err) {
      setErrors(fieldErrors(err, Object.keys(CLIENT_COMMUNICATION_LABELS), CLIENT_COMMUNICATION_LABELS));
    }
  };
  const v = (f: CommKey) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <form onSubmit={(e) => void save(e)} style={{ display: "grid", gap: 12, marginTop: 12 }} aria-label="Client Computer Communication">
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <Field {...v("usePkiClientCertificate")} hint="A client with a PKI client-authentication certificate authenticates with it (mutual TLS); off, through a CMG it uses its client token.">
        <Checkbox {...guard} label={CLIENT_COMMUNICATION_LABELS.usePkiClientCertificate} checked={pki} onChange={(_, d) => { setPki(d.checked === true); setSaved(false); }} />
      </Field>
      <Field {...v("clientsCheckCrl")} hint="Clients refuse a management point or CMG whose server certificate the published CRL revokes. Clear it when you do not publish a CRL.">
        <Checkbox {...guard} label={CLIENT_COMMUNICATION_LABELS.clientsCheckCrl} checked={crl} onChange={(_, d) => { setCrl(d.checked === true); setSaved(false); }} />
      </Field>
      {saved && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>Saved; clients get the change with their next policy.</MessageBarBody>
        </MessageBar>
      )}
      <DialogActions>
        <ChangeButton need="security" appearance="primary" type="submit">
          OK
        </ChangeButton>
        <Button onClick={close}>Close</Button>
      </DialogActions>
    </form>
  );
}
