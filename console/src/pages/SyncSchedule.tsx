/**
 * Software Update Synchronization > Synchronization schedule, as `opencmg sup schedule FQDN
 * --every N|--off` (GET/PUT /api/v1/servers/:fqdn/software-update-point/schedule): Enable
 * synchronization on a schedule, Run every (hours), and the next synchronization the site plans
 * (`site serve` runs it; with no record of a synchronization, at once).
 */
import { useEffect, useState, type FormEvent } from "react";
import { Checkbox, Field, Input, MessageBar, MessageBarBody } from "@fluentui/react-components";
import { api, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, Show, fieldErrors, localTime, useGet } from "../ui.tsx";

type SyncSchedule = Shape<"SyncSchedule">;

export const SCHEDULE_LABELS: Record<string, string> = {
  enabled: "Enable synchronization on a schedule",
  syncIntervalHours: "Run every (hours)",
};

export function SyncScheduleForm({ fqdn }: { fqdn: string }) {
  const path = `/api/v1/servers/${encodeURIComponent(fqdn)}/software-update-point/schedule`;
  // Refreshed with the status messages: a scheduled synchronization writes one.
  const schedule = useGet<SyncSchedule>(path, ["status"]);
  const [enabled, setEnabled] = useState(false);
  const [hours, setHours] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  const current = schedule.data?.syncIntervalHours;
  useEffect(() => {
    if (current === undefined) return;
    setEnabled(current !== null);
    setHours(current === null ? "" : String(current));
  }, [current]);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    try {
      // Typed text that is not a number goes as it is, for the site to refuse beside the field.
      const n = hours.trim() === "" ? hours : Number(hours);
      await api("PUT", path, { syncIntervalHours: enabled ? (typeof n === "number" && Number.isFinite(n) ? n : hours) : null });
      setErrors({});
      setSaved(true);
      schedule.reload();
    } catch (err) {
      setErrors(fieldErrors(err, Object.keys(SCHEDULE_LABELS), SCHEDULE_LABELS));
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <>
      <h2 style={{ fontSize: 18 }}>Synchronization schedule</h2>
      <form onSubmit={(e) => void save(e)} style={{ display: "grid", gap: 12, maxWidth: 560 }} aria-label="Synchronization schedule">
        {errors.form && <ErrorBar error={new Error(errors.form)} />}
        <Checkbox label={SCHEDULE_LABELS.enabled} checked={enabled} onChange={(_, d) => { setEnabled(d.checked === true); setSaved(false); }} />
        <Field label={SCHEDULE_LABELS.syncIntervalHours} hint="From 1 to 720 hours. The site server (opencmg site serve) synchronizes when the interval has passed since the last synchronization." {...v("syncIntervalHours")}>
          <Input value={hours} disabled={!enabled} inputMode="numeric" onChange={(_, d) => { setHours(d.value); setSaved(false); }} />
        </Field>
        <div>
          <ChangeButton appearance="primary" type="submit">
            Save schedule
          </ChangeButton>
        </div>
        {saved && (
          <MessageBar intent="success" role="status">
            <MessageBarBody>The synchronization schedule of {fqdn} is saved.</MessageBarBody>
          </MessageBar>
        )}
      </form>
      <section aria-label="Next synchronization" style={{ margin: "12px 0" }}>
        <Show l={schedule} what="The synchronization schedule">
          {(s) => <p style={{ margin: 0 }}>{s.nextSync === null ? "Next synchronization: none (no schedule; synchronizes only when asked)." : `Next synchronization: ${localTime(s.nextSync)} (every ${s.syncIntervalHours} hour(s)).`}</p>}
        </Show>
      </section>
    </>
  );
}
