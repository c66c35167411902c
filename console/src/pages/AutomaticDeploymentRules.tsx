/**
 * Software Library > Software Updates > Automatic Deployment Rules, as `opencmg adr list|add|run|
 * results|edit|enable|disable|delete`: the rules; Create Automatic Deployment Rule (name, software
 * update point, products, update classifications, title, run after any synchronization); Run Now
 * (the site answers when the downloads are done, through the route the software update point's
 * proxy settings give); each rule's recorded download results; Edit, Enable/Disable, and Delete
 * after a confirmation (AdrDialogs.tsx).
 */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Field, Input, MessageBar, MessageBarBody, MessageBarTitle, Select, Spinner } from "@fluentui/react-components";
import { api, get, type Role, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { ADR_LABELS, DeleteRuleDialog, EditRuleDialog, commaList as list } from "./AdrDialogs.tsx";

type Adr = Shape<"Adr">;
type AdrFile = Shape<"AdrFile">;


/** What the page shows below the rules: a run's outcome or the recorded results of a rule. */
interface Shown {
  rule: string;
  kind: "run" | "results";
  files: AdrFile[];
  matched?: number;
}

export function AutomaticDeploymentRulesPage() {
  const rules = useGet<Adr[]>("/api/v1/adrs");
  const roles = useGet<Role[]>("/api/v1/roles");
  const [running, setRunning] = useState<string>();
  const [shown, setShown] = useState<Shown>();
  const [actionError, setActionError] = useState<Error>();
  const [editing, setEditing] = useState<Adr>();
  const [deleting, setDeleting] = useState<Adr>();
  const [done, setDone] = useState<string>();

  const changed = (message: string) => {
    setEditing(undefined);
    setDeleting(undefined);
    setShown(undefined);
    setDone(message);
    rules.reload();
  };
  const toggle = async (a: Adr) => {
    setActionError(undefined);
    try {
      const r = await api<Adr>("POST", `/api/v1/adrs/${encodeURIComponent(a.name)}/${a.enabled ? "disable" : "enable"}`, {});
      changed(`${r.enabled ? "Enabled" : "Disabled"} automatic deployment rule ${r.name}.`);
    } catch (err) {
      setActionError(err as Error);
    }
  };

  const run = async (a: Adr) => {
    setRunning(a.name);
    setDone(undefined);
    setActionError(undefined);
    setShown(undefined);
    try {
      const r = await api<Shape<"AdrRun">>("POST", `/api/v1/adrs/${encodeURIComponent(a.name)}/run`, {});
      setShown({ rule: a.name, kind: "run", files: r.files, matched: r.matched });
    } catch (err) {
      setActionError(err as Error);
    } finally {
      setRunning(undefined);
    }
  };
  const results = async (a: Adr) => {
    setActionError(undefined);
    try {
      setShown({ rule: a.name, kind: "results", files: await get<AdrFile[]>(`/api/v1/adrs/${encodeURIComponent(a.name)}/results`) });
    } catch (err) {
      setActionError(err as Error);
    }
  };
  const sups = (roles.data ?? []).filter((r) => r.kind === "software-update-point").map((r) => r.serverFqdn);

  return (
    <>
      <PageTitle>Automatic Deployment Rules</PageTitle>
      <p style={{ margin: "0 0 12px", maxWidth: 760 }}>
        A rule matches the synchronized software updates by product, classification and title; Run Now downloads their content into the content library, through the proxy server when the software update point&apos;s <i>Use a proxy server when downloading content by using automatic deployment rules</i> is on.
      </p>
      <ErrorBar error={actionError} />
      {done && (
        <MessageBar intent="success" role="status" style={{ marginBottom: 8 }}>
          <MessageBarBody>{done}</MessageBarBody>
        </MessageBar>
      )}
      <EditRuleDialog rule={editing} onClose={() => setEditing(undefined)} onSaved={changed} />
      <DeleteRuleDialog rule={deleting} onClose={() => setDeleting(undefined)} onDeleted={changed} />
      <Show l={rules} what="Automatic deployment rules">
        {(rows) => (
          <DataTable
            label="Automatic deployment rules"
            rows={rows}
            rowKey={(a) => a.name}
            initialSort={{ column: "name", direction: "ascending" }}
            empty="No automatic deployment rule."
            columns={[
              { id: "name", label: "Name", text: (a) => a.name, width: "14%" },
              { id: "enabled", label: "Enabled", text: (a) => (a.enabled ? "Yes" : "No"), filter: true, width: "7%" },
              { id: "afterSync", label: "After synchronization", text: (a) => (a.runAfterSync ? "Run" : "No"), width: "9%" },
              { id: "server", label: "Software update point", text: (a) => a.server, filter: true, width: "13%" },
              { id: "products", label: "Products", text: (a) => a.products.join(", "), width: "11%" },
              { id: "classifications", label: "Update classifications", text: (a) => a.classifications.join(", "), width: "11%" },
              { id: "title", label: "Title contains", text: (a) => a.titleContains ?? "", width: "9%" },
              {
                id: "actions",
                label: "Actions",
                text: () => "",
                unsortable: true,
                width: "26%",
                render: (a) => (
                  <div style={{ display: "flex", gap: 4, flexWrap: "wrap" }}>
                    <ChangeButton size="small" disabled={running !== undefined || !a.enabled} title={a.enabled ? undefined : "The rule is disabled: enable it to run it."} onClick={() => void run(a)} aria-label={`Run Now ${a.name}`}>
                      Run Now
                    </ChangeButton>
                    <Button size="small" onClick={() => void results(a)} aria-label={`Results of ${a.name}`}>
                      Results
                    </Button>
                    <ChangeButton size="small" onClick={() => { setDone(undefined); setEditing(a); }} aria-label={`Edit ${a.name}`}>
                      Edit
                    </ChangeButton>
                    <ChangeButton size="small" onClick={() => void toggle(a)} aria-label={`${a.enabled ? "Disable" : "Enable"} ${a.name}`}>
                      {a.enabled ? "Disable" : "Enable"}
                    </ChangeButton>
                    <ChangeButton size="small" onClick={() => { setDone(undefined); setDeleting(a); }} aria-label={`Delete ${a.name}`}>
                      Delete
                    </ChangeButton>
                  </div>
                ),
              },
            ]}
          />
        )}
      </Show>
      {running && <Spinner size="small" label={`Running ${running}: downloading the matching updates' content`} />}
      {shown && <RunResults shown={shown} />}
      <h2 style={{ fontSize: 18 }}>Create Automatic Deployment Rule</h2>
      <CreateRule sups={sups} created={rules.reload} />
    </>
  );
}

function RunResults({ shown }: { shown: Shown }) {
  const failed = shown.files.filter((f) => f.status === "failed").length;
  const ok = shown.files.length - failed;
  return (
    <section aria-label={`Results of ${shown.rule}`} style={{ margin: "12px 0" }}>
      <MessageBar intent={failed > 0 ? "error" : "success"} layout="multiline" role="status" style={{ marginBottom: 8 }}>
        <MessageBarBody>
          <MessageBarTitle>{shown.kind === "run" ? `${shown.rule} ran` : `Recorded results of ${shown.rule}`}</MessageBarTitle>
          {shown.kind === "run" && `Updates matched: ${shown.matched}. `}
          {ok} of {shown.files.length} files in the content library{failed > 0 ? `; ${failed} failed.` : "."}
        </MessageBarBody>
      </MessageBar>
      <DataTable
        label={`Downloads of ${shown.rule}`}
        rows={shown.files.map((f, i) => ({ ...f, key: String(i) }))}
        rowKey={(f) => f.key}
        empty="No file: no synchronized update matches the rule."
        columns={[
          { id: "update", label: "Update", text: (f) => f.updateId, width: "14%" },
          { id: "file", label: "File", text: (f) => f.file, width: "18%" },
          { id: "status", label: "Status", text: (f) => f.status, filter: true, width: "12%" },
          { id: "code", label: "Error code", text: (f) => (f.code === null ? "" : String(f.code)), width: "10%" },
          { id: "bytes", label: "Bytes", text: (f) => String(f.bytes), sortValue: (f) => f.bytes, width: "12%" },
          { id: "message", label: "Message", text: (f) => f.message, truncate: true, width: "34%" },
        ]}
      />
    </section>
  );
}

function CreateRule({ sups, created }: { sups: string[]; created: () => void }) {
  const [name, setName] = useState("");
  const [server, setServer] = useState("");
  const [products, setProducts] = useState("");
  const [classifications, setClassifications] = useState("");
  const [title, setTitle] = useState("");
  const [afterSync, setAfterSync] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string>();
  const chosen = server || sups[0] || "";
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setDone(undefined);
    try {
      const a = await api<Adr>("POST", "/api/v1/adrs", {
        name,
        server: chosen,
        products: list(products),
        classifications: list(classifications),
        ...(title.trim() ? { titleContains: title.trim() } : {}),
        runAfterSync: afterSync,
      });
      setErrors({});
      setDone(a.name);
      setName("");
      setProducts("");
      setClassifications("");
      setTitle("");
      setAfterSync(false);
      created();
    } catch (err) {
      setErrors(fieldErrors(err, Object.keys(ADR_LABELS), ADR_LABELS));
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <form onSubmit={(e) => void create(e)} style={{ display: "grid", gap: 8, maxWidth: 560 }} aria-label="Create Automatic Deployment Rule">
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <Field label={ADR_LABELS.name} {...v("name")}>
        <Input value={name} onChange={(_, d) => setName(d.value)} />
      </Field>
      <Field label={ADR_LABELS.server} hint="Its proxy settings decide the route of the downloads." {...v("server")}>
        <Select value={chosen} onChange={(_, d) => setServer(d.value)}>
          {sups.length === 0 && <option value="">No software update point</option>}
          {sups.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </Select>
      </Field>
      <Field label={ADR_LABELS.products} hint="e.g. Windows 11; empty: any product." {...v("products")}>
        <Input value={products} onChange={(_, d) => setProducts(d.value)} />
      </Field>
      <Field label={ADR_LABELS.classifications} hint="e.g. Security Updates, Critical Updates; empty: any classification." {...v("classifications")}>
        <Input value={classifications} onChange={(_, d) => setClassifications(d.value)} />
      </Field>
      <Field label={ADR_LABELS.titleContains} hint="Matches titles containing this text (any case); empty: any title." {...v("titleContains")}>
        <Input value={title} onChange={(_, d) => setTitle(d.value)} />
      </Field>
      <Field hint="Runs after each successful synchronization of the software update point, while the rule is enabled." {...v("runAfterSync")}>
        <Checkbox label={ADR_LABELS.runAfterSync} checked={afterSync} onChange={(_, d) => setAfterSync(d.checked === true)} />
      </Field>
      <div>
        <ChangeButton appearance="primary" type="submit">
          Create
        </ChangeButton>
      </div>
      {done && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>Created automatic deployment rule {done}.</MessageBarBody>
        </MessageBar>
      )}
    </form>
  );
}
