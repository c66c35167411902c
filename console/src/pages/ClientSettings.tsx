/**
 * Administration > Client Settings: the default client settings (policy) as `opencmg site clients
 * settings` shows and changes them (GET/PATCH /api/v1/clients/settings): whether clients use a
 * cloud management gateway, whether they always do (ClientAlwaysOnInternet), and the location and
 * policy request intervals. A refused value shows beside its field, named by the field's label.
 */
import { useState, type FormEvent } from "react";
import { Checkbox, Field, Input, MessageBar, MessageBarBody } from "@fluentui/react-components";
import { api } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";

/** The API's client settings (`S.clientSettings`); kept here so api.ts stays as its owner generates it. */
export interface ClientSettings {
  locationIntervalMinutes: number;
  policyIntervalMinutes: number;
  useCmg: boolean;
  alwaysOnInternet: boolean;
}
type Key = keyof ClientSettings;

/** The documents' words for each setting. */
export const CLIENT_SETTING_LABELS: Record<Key, string> = {
  useCmg: "Enable clients to use a cloud management gateway",
  alwaysOnInternet: "Client is always on the internet (ClientAlwaysOnInternet)",
  locationIntervalMinutes: "Location request interval (minutes)",
  policyIntervalMinutes: "Client policy polling interval (minutes)",
};
const KEYS = Object.keys(CLIENT_SETTING_LABELS) as Key[];

export function ClientSettingsPage() {
  const settings = useGet<ClientSettings>("/api/v1/clients/settings");
  return (
    <>
      <PageTitle>Client Settings</PageTitle>
      <Show l={settings} what="Client settings">
        {(s) => <ClientSettingsForm initial={s} reload={settings.reload} />}
      </Show>
    </>
  );
}

/** A whole number typed as one goes to the site as a number; anything else as typed, for the site to refuse by name. */
const minutesValue = (v: string): number | string => (/^\s*\d+\s*$/.test(v) ? Number(v) : v);

function ClientSettingsForm({ initial, reload }: { initial: ClientSettings; reload: () => void }) {
  const [useCmg, setUseCmg] = useState(initial.useCmg);
  const [always, setAlways] = useState(initial.alwaysOnInternet);
  const [location, setLocation] = useState(String(initial.locationIntervalMinutes));
  const [policy, setPolicy] = useState(String(initial.policyIntervalMinutes));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    try {
      await api("PATCH", "/api/v1/clients/settings", { useCmg, alwaysOnInternet: always, locationIntervalMinutes: minutesValue(location), policyIntervalMinutes: minutesValue(policy) });
      setErrors({});
      setSaved(true);
      reload();
    } catch (err) {
      setErrors(fieldErrors(err, KEYS, CLIENT_SETTING_LABELS));
    }
  };
  const v = (f: Key) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  const edited = () => setSaved(false);
  return (
    <form onSubmit={(e) => void save(e)} style={{ display: "grid", gap: 12, maxWidth: 560 }} aria-label="Client settings">
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <Field {...v("useCmg")} hint="Clients receive the CMG's location with the management points (on by default).">
        <Checkbox label={CLIENT_SETTING_LABELS.useCmg} checked={useCmg} onChange={(_, d) => { setUseCmg(d.checked === true); edited(); }} />
      </Field>
      <Field {...v("alwaysOnInternet")} hint="Clients use the CMG wherever they are, on the intranet too (for tests, or branch offices that should use the CMG).">
        <Checkbox label={CLIENT_SETTING_LABELS.alwaysOnInternet} checked={always} onChange={(_, d) => { setAlways(d.checked === true); edited(); }} />
      </Field>
      <Field label={CLIENT_SETTING_LABELS.locationIntervalMinutes} hint="1 to 10080; the default 1440 is every 24 hours." {...v("locationIntervalMinutes")}>
        <Input inputMode="numeric" value={location} onChange={(_, d) => { setLocation(d.value); edited(); }} />
      </Field>
      <Field label={CLIENT_SETTING_LABELS.policyIntervalMinutes} hint="1 to 10080; the default is 60." {...v("policyIntervalMinutes")}>
        <Input inputMode="numeric" value={policy} onChange={(_, d) => { setPolicy(d.value); edited(); }} />
      </Field>
      <div>
        <ChangeButton appearance="primary" type="submit">
          OK
        </ChangeButton>
      </div>
      {saved && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>The client settings are saved; clients get them at their next policy request.</MessageBarBody>
        </MessageBar>
      )}
    </form>
  );
}
