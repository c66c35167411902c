/**
 * Software Library > Software Updates > Software Update Synchronization, as `opencmg role set FQDN
 * software-update-point --upstream-url --use-proxy-for-sync`, `opencmg sup sync FQDN` and `opencmg
 * sup updates`: the software update point's upstream update source and whether it synchronizes
 * through the server's proxy (PATCH .../roles/software-update-point), Synchronize Now (POST
 * .../software-update-point/sync), the last synchronization as the status system recorded it
 * (SMS_WSUS_SYNC_MANAGER's newest message from that server) and the synchronized updates.
 */
import { useEffect, useState, type FormEvent } from "react";
import { Checkbox, Field, Input, MessageBar, MessageBarBody, MessageBarTitle, Select, Spinner } from "@fluentui/react-components";
import { SyncScheduleForm } from "./SyncSchedule.tsx";
import { api, type Paged, type Role, type Shape, type StatusMessage } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, localTime, useGet } from "../ui.tsx";

type Update = Shape<"Update">;
type SyncResult = Shape<"SyncResult">;

/** The documents' words for the settings (document 003: the software update point's options). */
export const SUP_SYNC_LABELS: Record<string, string> = {
  upstreamUrl: "Upstream update source (URL)",
  useProxyForSync: "Use a proxy server when synchronizing software updates",
};
/** The status system's component of the synchronisation (src/roles/sup/sync.ts). */
const SYNC_COMPONENT = "SMS_WSUS_SYNC_MANAGER";

export function SoftwareUpdateSyncPage() {
  const roles = useGet<Role[]>("/api/v1/roles");
  const updates = useGet<Update[]>("/api/v1/updates");
  const [fqdn, setFqdn] = useState<string>();
  return (
    <>
      <PageTitle>Software Update Synchronization</PageTitle>
      <Show l={roles} what="Site system roles">
        {(all) => {
          const sups = all.filter((r) => r.kind === "software-update-point");
          if (sups.length === 0)
            return (
              <MessageBar intent="info" role="status">
                <MessageBarBody>The site has no software update point: add the role to a server in Servers and Site System Roles.</MessageBarBody>
              </MessageBar>
            );
          const chosen = sups.find((r) => r.serverFqdn === fqdn) ?? sups[0]!;
          return (
            <>
              <Field label="Software update point" style={{ maxWidth: 560, marginBottom: 12 }}>
                <Select value={chosen.serverFqdn} onChange={(_, d) => setFqdn(d.value)}>
                  {sups.map((r) => (
                    <option key={r.serverFqdn} value={r.serverFqdn}>
                      {r.serverFqdn}
                    </option>
                  ))}
                </Select>
              </Field>
              <SyncSettings key={chosen.serverFqdn} role={chosen} reload={roles.reload} synced={updates.reload} />
              <SyncScheduleForm key={`schedule-${chosen.serverFqdn}`} fqdn={chosen.serverFqdn} />
            </>
          );
        }}
      </Show>
      <h2 style={{ fontSize: 18 }}>All Software Updates</h2>
      <Show l={updates} what="Software updates">
        {(rows) => (
          <DataTable
            label="Software updates"
            rows={rows}
            rowKey={(u) => u.id}
            initialSort={{ column: "released", direction: "descending" }}
            empty="No software update: synchronize to get the upstream update source's catalog."
            columns={[
              { id: "id", label: "Article ID", text: (u) => u.id, width: "14%" },
              { id: "title", label: "Title", text: (u) => u.title, width: "34%" },
              { id: "product", label: "Product", text: (u) => u.product, filter: true, width: "16%" },
              { id: "classification", label: "Classification", text: (u) => u.classification, filter: true, width: "16%" },
              { id: "released", label: "Date Released", text: (u) => u.releaseDate, width: "12%" },
              { id: "files", label: "Files", text: (u) => String(u.files.length), sortValue: (u) => u.files.length, width: "8%" },
            ]}
          />
        )}
      </Show>
    </>
  );
}

function SyncSettings({ role, reload, synced }: { role: Role; reload: () => void; synced: () => void }) {
  const fqdn = role.serverFqdn;
  const settings = role.settings as { upstreamUrl?: string; useProxyForSync?: boolean };
  const [upstream, setUpstream] = useState(settings.upstreamUrl ?? "");
  const [useProxy, setUseProxy] = useState(Boolean(settings.useProxyForSync));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  const [syncing, setSyncing] = useState(false);
  const [result, setResult] = useState<SyncResult>();
  const [syncError, setSyncError] = useState<Error>();
  const last = useGet<Paged<StatusMessage>>(`/api/v1/status/messages?component=${SYNC_COMPONENT}&server=${encodeURIComponent(fqdn)}&limit=1`, ["status"]);
  useEffect(() => {
    setUpstream(settings.upstreamUrl ?? "");
    setUseProxy(Boolean(settings.useProxyForSync));
  }, [settings.upstreamUrl, settings.useProxyForSync]);

  const refused = (err: unknown) => setErrors(fieldErrors(err, Object.keys(SUP_SYNC_LABELS), SUP_SYNC_LABELS));
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    try {
      // An empty field leaves a source the role has for the site to refuse by name; none yet stays none.
      const url = upstream.trim();
      await api("PATCH", `/api/v1/servers/${encodeURIComponent(fqdn)}/roles/software-update-point`, { useProxyForSync: useProxy, ...(url || settings.upstreamUrl ? { upstreamUrl: url } : {}) });
      setErrors({});
      setSaved(true);
      reload();
    } catch (err) {
      refused(err);
    }
  };
  const synchronize = async () => {
    setResult(undefined);
    setSyncError(undefined);
    setSyncing(true);
    try {
      setResult(await api<SyncResult>("POST", `/api/v1/servers/${encodeURIComponent(fqdn)}/software-update-point/sync`, {}));
      setErrors({});
      synced();
    } catch (err) {
      // A setting the site names goes beside its field; what the upstream answered, beside the button.
      const f = fieldErrors(err, Object.keys(SUP_SYNC_LABELS), SUP_SYNC_LABELS);
      if (f.form) setSyncError(new Error(f.form));
      else setErrors(f);
    } finally {
      setSyncing(false);
      last.reload();
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  const edited = () => setSaved(false);
  const message = last.data?.items[0];
  return (
    <>
      <form onSubmit={(e) => void save(e)} style={{ display: "grid", gap: 12, maxWidth: 560 }} aria-label="Synchronization settings">
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Field label={SUP_SYNC_LABELS.upstreamUrl} hint="The update catalog (JSON) the software update point synchronizes from, over HTTP or HTTPS." {...v("upstreamUrl")}>
          <Input type="url" value={upstream} onChange={(_, d) => { setUpstream(d.value); edited(); }} placeholder="https://" />
        </Field>
        <Field hint="Through the proxy server of this site system server (Proxy tab of its properties); off: directly." {...v("useProxyForSync")}>
          <Checkbox label={SUP_SYNC_LABELS.useProxyForSync} checked={useProxy} onChange={(_, d) => { setUseProxy(d.checked === true); edited(); }} />
        </Field>
        <div>
          <ChangeButton appearance="primary" type="submit">
            OK
          </ChangeButton>
        </div>
        {saved && (
          <MessageBar intent="success" role="status">
            <MessageBarBody>The synchronization settings of {fqdn} are saved.</MessageBarBody>
          </MessageBar>
        )}
      </form>
      <h2 style={{ fontSize: 18 }}>Synchronization</h2>
      <section aria-label="Last synchronization" style={{ marginBottom: 12 }}>
        <Show l={last} what="The last synchronization">
          {() =>
            message ? (
              <MessageBar intent={message.severity === "error" ? "error" : "success"} layout="multiline">
                <MessageBarBody>
                  <MessageBarTitle>Last synchronization: {message.severity === "error" ? "failed" : "succeeded"}</MessageBarTitle>
                  {localTime(message.time)}: {message.text}
                </MessageBarBody>
              </MessageBar>
            ) : (
              <p style={{ margin: 0 }}>Last synchronization: never.</p>
            )
          }
        </Show>
      </section>
      <ChangeButton onClick={() => void synchronize()} disabled={syncing}>
        Synchronize Now
      </ChangeButton>
      {syncing && <Spinner size="tiny" label="Synchronizing" labelPosition="after" style={{ display: "inline-flex", marginLeft: 8 }} />}
      <div style={{ marginTop: 8 }}>
        <ErrorBar error={syncError} />
      </div>
      {result && (
        <MessageBar intent="success" role="status" style={{ marginTop: 8 }}>
          <MessageBarBody>
            Synchronized {result.updates} updates ({result.added} new) from {result.upstreamUrl} {result.route}.
            {result.rulesRun.map((r) => (
              <div key={r.rule}>{r.error !== undefined ? `Rule ${r.rule} did not run after the synchronization: ${r.error}` : `Ran rule ${r.rule} after the synchronization: ${r.matched} update(s) matched, ${(r.files ?? 0) - (r.failed ?? 0)} of ${r.files} file(s) in the content library.`}</div>
            ))}
          </MessageBarBody>
        </MessageBar>
      )}
    </>
  );
}
