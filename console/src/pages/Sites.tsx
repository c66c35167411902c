/**
 * Administration > Site Configuration > Sites: the hierarchy, and the site's settings (client
 * computer communication and the schedules): each site setting with its value, default and rule,
 * changed through PUT /api/v1/settings/:key; the site's message for a refused value shows next to it.
 */
import { useState } from "react";
import { Button, Field, Input, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, type SiteSetting as Setting, type Site } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
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
              </TableRow>
            </TableHeader>
            <TableBody>
              {list.map((s) => (
                <TableRow key={s.code}>
                  <TableCell>{s.code}</TableCell>
                  <TableCell>{s.name}</TableCell>
                  <TableCell>{s.type}</TableCell>
                  <TableCell>{s.parentCode ?? ""}</TableCell>
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
