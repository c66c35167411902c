/**
 * Create Cloud Management Gateway: the wizard of document 004 with its pages General, Settings,
 * Alerts and Summary. The site validates everything again; an error it names a field of goes back
 * to that field's page and shows next to the field.
 */
import { useCallback, useState, type InputHTMLAttributes, type ReactNode } from "react";
import {
  Button,
  Checkbox,
  Dialog,
  DialogActions,
  DialogBody,
  DialogContent,
  DialogSurface,
  DialogTitle,
  Dropdown,
  Field,
  Input,
  Option,
  SpinButton,
  MessageBar,
  MessageBarBody,
  Text,
} from "@fluentui/react-components";
import { api, type Cmg } from "../api.ts";
import { certificateNames, certificateSubject, certificateThumbprint, pemBlocks, readFileBase64, readFileText } from "../certs.ts";
import { ErrorBar, errorOf as errorProps, fieldErrors } from "../ui.tsx";

const PAGES = ["General", "Settings", "Alerts", "Summary"] as const;
type Page = (typeof PAGES)[number];

export const ENVIRONMENTS: Record<string, string> = { public: "Azure Public Cloud", usgov: "Azure US Government Cloud", custom: "Custom (self-hosted)" };
export const PROVIDERS: Record<string, string> = {
  local: "Local: instances run on this site's machine",
  external: "External: instances run elsewhere from the start-up bundle",
  kubernetes: "Kubernetes: instances run as pods in a cluster",
};

/** Which page holds the field an API error names. */
const FIELD_PAGE: Record<string, Page> = {
  cloud: "General",
  provider: "General",
  name: "Settings",
  serviceFqdn: "Settings",
  serverCert: "Settings",
  serverCertPem: "Settings",
  serverKey: "Settings",
  serverKeyPem: "Settings",
  serverPfx: "Settings",
  pfxFile: "Settings",
  pfxPassword: "Settings",
  region: "Settings",
  resourceGroup: "Settings",
  instances: "Settings",
  trustedRoots: "Settings",
  intermediates: "Settings",
  crlCheck: "Settings",
  deploy: "Settings",
  listenHost: "Settings",
  publicHost: "Settings",
  clientPortBase: "Settings",
  tunnelPortBase: "Settings",
  instanceHost: "Settings",
  metricsPortBase: "Settings",
  metricsHost: "Settings",
  kubernetes: "Settings",
  kubeconfig: "Settings",
  namespace: "Settings",
  image: "Settings",
  trafficAlert: "Alerts",
  thresholdGb: "Alerts",
  warningPct: "Alerts",
  criticalPct: "Alerts",
  stopOnCritical: "Alerts",
};

/** Each field's label: the wizard's fields say them, and a refusal beside a field is "<its label>: <the rule>". */
const LABELS: Record<string, string> = {
  cloud: "Azure environment",
  provider: "Provider",
  serverCert: "Certificate file",
  serverCertPem: "Certificate file",
  serverPfx: "Certificate file",
  pfxFile: "Certificate file",
  pfxPassword: "PFX password",
  serverKey: "Private key file",
  serverKeyPem: "Private key file",
  name: "Service name",
  serviceFqdn: "Service FQDN",
  region: "Region",
  resourceGroup: "Resource group",
  instances: "VM instance",
  trustedRoots: "Trusted root certificate files (at most 2)",
  intermediates: "Intermediate certificate files (at most 4)",
  crlCheck: "Verify Client Certificate Revocation",
  listenHost: "Listen address",
  deploy: "Listen address",
  publicHost: "Public host name (default: the service FQDN)",
  instanceHost: "Public host name (default: the service FQDN)",
  clientPortBase: "Client port of the first instance",
  tunnelPortBase: "Tunnel port of the first instance",
  metricsPortBase: "Metrics port of the first instance (0: none)",
  metricsHost: "Metrics bind address",
  kubeconfig: "Kubeconfig path",
  kubernetes: "Kubeconfig path",
  namespace: "Namespace",
  image: "Gateway image (default: opencmg-gateway of this version)",
  thresholdGb: "14-day threshold (GB)",
  trafficAlert: "14-day threshold (GB)",
  warningPct: "Percentage of threshold for Warning alert",
  criticalPct: "Percentage of threshold for Critical alert",
  stopOnCritical: "Stop this service when it exceeds the critical threshold",
};

/** A chosen CA certificate: its file and, as the lists show it, its subject. */
interface ChosenCa {
  file: string;
  pem: string;
  subject: string;
}

interface Form {
  cloud: string;
  provider: string;
  /** The chosen files themselves: a page mounts its file inputs anew, and they show these again. */
  certFile: File | undefined;
  keyFile: File | undefined;
  trustedRootFiles: File[];
  intermediateFiles: File[];
  certFileName: string;
  /** The certificate as the browser read it (subject, SHA-1 thumbprint); "" for a PFX or an unreadable file. */
  certSubject: string;
  certThumbprint: string;
  serverCertPem: string;
  serverChainPem: string[];
  serverKeyPem: string;
  serverPfx: string;
  pfxPassword: string;
  name: string;
  serviceFqdn: string;
  region: string;
  resourceGroup: string;
  instances: number;
  trustedRoots: ChosenCa[];
  intermediates: ChosenCa[];
  crlCheck: boolean;
  listenHost: string;
  publicHost: string;
  clientPortBase: string;
  tunnelPortBase: string;
  /** Kubernetes provider: the kubeconfig file on the site server, the namespace, the gateway image (blank: the default). */
  kubeconfig: string;
  namespace: string;
  image: string;
  /** Local and external providers: instance i serves Prometheus metrics on metricsHost:metricsPortBase + i (a pod uses its own port). */
  metricsPortBase: string;
  metricsHost: string;
  alert: boolean;
  stopOnCritical: boolean;
  thresholdGb: string;
  warningPct: string;
  criticalPct: string;
}

const EMPTY: Form = {
  cloud: "public",
  provider: "local",
  certFile: undefined,
  keyFile: undefined,
  trustedRootFiles: [],
  intermediateFiles: [],
  certFileName: "",
  certSubject: "",
  certThumbprint: "",
  serverCertPem: "",
  serverChainPem: [],
  serverKeyPem: "",
  serverPfx: "",
  pfxPassword: "",
  name: "",
  serviceFqdn: "",
  region: "local",
  resourceGroup: "",
  instances: 1,
  trustedRoots: [],
  intermediates: [],
  crlCheck: true,
  listenHost: "0.0.0.0",
  publicHost: "",
  clientPortBase: "443",
  tunnelPortBase: "10140",
  kubeconfig: "",
  namespace: "opencmg",
  image: "",
  metricsPortBase: "9440",
  metricsHost: "127.0.0.1",
  alert: false,
  stopOnCritical: false,
  thresholdGb: "",
  warningPct: "50",
  criticalPct: "90",
};

const num = (s: string): number | string => (/^\d+(\.\d+)?$/.test(s.trim()) ? Number(s.trim()) : s);

/** The body of POST /api/v1/cmgs (cmgCreateBody in src/api/routes-cmgs.ts: strict, so only its fields). */
export function createBody(f: Form): Record<string, unknown> {
  const deploy: Record<string, unknown> = {};
  if (f.provider === "local") {
    deploy.listenHost = f.listenHost.trim();
    if (f.publicHost.trim()) deploy.publicHost = f.publicHost.trim();
    deploy.clientPortBase = num(f.clientPortBase);
    deploy.tunnelPortBase = num(f.tunnelPortBase);
  }
  if (f.provider === "kubernetes")
    deploy.kubernetes = { kubeconfig: f.kubeconfig.trim(), namespace: f.namespace.trim(), ...(f.image.trim() ? { image: f.image.trim() } : {}) };
  if (f.provider !== "kubernetes") {
    deploy.metricsPortBase = num(f.metricsPortBase);
    deploy.metricsHost = f.metricsHost.trim();
  }
  deploy.trafficAlert = f.alert ? { thresholdGb: num(f.thresholdGb), warningPct: num(f.warningPct), criticalPct: num(f.criticalPct), stopOnCritical: f.stopOnCritical } : null;
  return {
    name: f.name.trim(),
    // The API takes the chain as more certificates after the server's own in serverCertPem.
    ...(f.serverPfx ? { serverPfx: f.serverPfx, pfxPassword: f.pfxPassword } : { serverCertPem: [f.serverCertPem, ...f.serverChainPem].join(""), serverKeyPem: f.serverKeyPem }),
    ...(f.serviceFqdn.trim() ? { serviceFqdn: f.serviceFqdn.trim() } : {}),
    cloud: f.cloud,
    provider: f.provider,
    region: f.region.trim(),
    ...(f.resourceGroup.trim() ? { resourceGroup: f.resourceGroup.trim() } : {}),
    instances: f.instances,
    trustedRoots: f.trustedRoots.map((r) => r.pem),
    intermediates: f.intermediates.map((r) => r.pem),
    crlCheck: f.crlCheck,
    deploy,
  };
}

/**
 * A file input that shows the files chosen before: the wizard mounts a page's inputs anew (Next
 * and Previous, a refused Create), and a new input would say "No file chosen".
 */
function FileInput({ files, onFiles, ...p }: InputHTMLAttributes<HTMLInputElement> & { files: readonly File[]; onFiles: (files: FileList | null) => void }) {
  const keep = useCallback(
    (el: HTMLInputElement | null) => {
      if (!el) return;
      const shown = Array.from(el.files ?? []);
      if (shown.length === files.length && shown.every((f, i) => f === files[i])) return;
      try {
        const t = new DataTransfer();
        for (const f of files) t.items.add(f);
        el.files = t.files;
      } catch {
        // A browser that cannot set them: the field's hint still names the chosen files.
      }
    },
    [files],
  );
  return <input {...p} ref={keep} type="file" onChange={(e) => onFiles(e.target.files)} />;
}

/** Which CA files are chosen, by their certificates' subjects (the file's name when it has none readable). */
const caList = (cas: readonly ChosenCa[]): string => cas.map((c) => (c.subject ? `${c.subject} (${c.file})` : c.file)).join("; ");

export function CreateCmgWizard({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (c: Cmg) => void }) {
  const [page, setPage] = useState<Page>("General");
  const [f, setF] = useState<Form>(EMPTY);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((x) => ({ ...x, [k]: v }));

  const chooseCert = async (file: File | undefined) => {
    if (!file) return;
    clearErrors("serverCert", "serverCertPem", "serverPfx", "pfxFile");
    if (/\.(pfx|p12)$/i.test(file.name)) {
      setF((x) => ({ ...x, certFile: file, keyFile: undefined, certFileName: file.name, certSubject: "", certThumbprint: "", serverPfx: "", serverCertPem: "", serverKeyPem: "" }));
      const b64 = await readFileBase64(file);
      setF((x) => ({ ...x, serverPfx: b64 }));
      return;
    }
    const text = await readFileText(file);
    const blocks = pemBlocks(text);
    const [cert, ...chain] = blocks.certificates;
    // A file that is no PEM certificate goes to the site as it is: its message names the field.
    if (!cert) return setF((x) => ({ ...x, certFile: file, certFileName: file.name, certSubject: "", certThumbprint: "", serverPfx: "", serverCertPem: text, serverChainPem: [] }));
    let names: { commonName: string | undefined; dnsNames: string[] } = { commonName: undefined, dnsNames: [] };
    try {
      names = certificateNames(cert);
    } catch {
      // Unreadable here: the site says what is wrong with it.
    }
    const fqdn = names.commonName && /\./.test(names.commonName) ? names.commonName : (names.dnsNames[0] ?? names.commonName ?? "");
    const thumbprint = await certificateThumbprint(cert);
    setF((x) => ({
      ...x,
      certFile: file,
      certFileName: file.name,
      certSubject: certificateSubject(cert),
      certThumbprint: thumbprint,
      serverPfx: "",
      serverCertPem: cert,
      serverChainPem: chain,
      serverKeyPem: blocks.privateKey ?? x.serverKeyPem,
      serviceFqdn: fqdn,
      name: fqdn.startsWith("*.") ? "" : (fqdn.split(".")[0] ?? ""),
    }));
  };
  const chooseKey = async (file: File | undefined) => {
    if (!file) return;
    const text = await readFileText(file);
    clearErrors("serverKey", "serverKeyPem");
    // Without a PEM key block the file goes as it is, and the site's message names serverKeyPem.
    setF((x) => ({ ...x, keyFile: file, serverKeyPem: pemBlocks(text).privateKey ?? text }));
  };
  const addCas = async (which: "trustedRoots" | "intermediates", files: FileList | null) => {
    if (!files) return;
    const chosen = Array.from(files);
    const add: ChosenCa[] = [];
    for (const file of chosen) for (const pem of pemBlocks(await readFileText(file)).certificates) add.push({ file: file.name, pem, subject: certificateSubject(pem) });
    clearErrors(which);
    // The input shows what it holds now: these files (the list keeps those chosen before too).
    setF((x) => ({ ...x, [which]: [...x[which], ...add], [which === "trustedRoots" ? "trustedRootFiles" : "intermediateFiles"]: chosen }));
  };
  const clearErrors = (...names: string[]) => setErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => !names.includes(k))));

  // Every check is the site's: its errors name the fields, and they stay beside them until the next Create.
  const next = () => setPage(PAGES[PAGES.indexOf(page) + 1]!);
  const create = async () => {
    setBusy(true);
    try {
      const c = await api<Cmg>("POST", "/api/v1/cmgs", createBody(f));
      setF(EMPTY);
      setPage("General");
      onCreated(c);
    } catch (err) {
      const e = fieldErrors(err, Object.keys(FIELD_PAGE), LABELS);
      setErrors(e);
      // The first page that holds a refused field; the others' refusals wait beside their fields.
      const first = PAGES.find((p) => Object.keys(e).some((k) => FIELD_PAGE[k] === p));
      if (first) setPage(first);
    } finally {
      setBusy(false);
    }
  };

  let body: ReactNode;
  if (page === "General")
    body = (
      <>
        <Text>Specify the environment of the cloud management gateway and where its instances run.</Text>
        <Field label="Azure environment" {...errorProps(errors, "cloud")}>
          <Dropdown value={ENVIRONMENTS[f.cloud]} selectedOptions={[f.cloud]} onOptionSelect={(_, d) => set("cloud", d.optionValue ?? "public")}>
            {Object.entries(ENVIRONMENTS).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label="Provider" {...errorProps(errors, "provider")}>
          <Dropdown value={PROVIDERS[f.provider]} selectedOptions={[f.provider]} onOptionSelect={(_, d) => set("provider", d.optionValue ?? "local")}>
            {Object.entries(PROVIDERS).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
      </>
    );
  else if (page === "Settings")
    body = (
      <>
        <Field label={LABELS.serverCertPem} hint={f.certFileName ? `Chosen: ${f.certFileName}${f.certSubject ? `: ${f.certSubject}` : ""}${f.certThumbprint ? `, thumbprint ${f.certThumbprint}` : ""}` : "The CMG's server authentication certificate: PEM (certificate with its key, or a separate key file) or PFX"} {...errorProps(errors, "serverCert", "serverCertPem", "serverPfx", "pfxFile")}>
          {(p) => <FileInput {...p} accept=".pem,.crt,.cer,.pfx,.p12" files={f.certFile ? [f.certFile] : []} onFiles={(l) => void chooseCert(l?.[0])} />}
        </Field>
        {f.serverPfx ? (
          <Field label={LABELS.pfxPassword} {...errorProps(errors, "pfxPassword")}>
            <Input type="password" value={f.pfxPassword} onChange={(_, d) => set("pfxPassword", d.value)} autoComplete="off" />
          </Field>
        ) : (
          <Field label={LABELS.serverKeyPem} hint={f.serverKeyPem ? `Private key loaded${f.keyFile ? ` from ${f.keyFile.name}` : ` from ${f.certFileName}`}` : "PEM private key of the certificate, when the certificate file has none"} {...errorProps(errors, "serverKey", "serverKeyPem")}>
            {(p) => <FileInput {...p} accept=".pem,.key" files={f.keyFile ? [f.keyFile] : []} onFiles={(l) => void chooseKey(l?.[0])} />}
          </Field>
        )}
        <Field label={LABELS.name} {...errorProps(errors, "name")}>
          <Input value={f.name} onChange={(_, d) => set("name", d.value)} />
        </Field>
        <Field label={LABELS.serviceFqdn} hint="With a wildcard certificate, replace the * with the CMG's host name" {...errorProps(errors, "serviceFqdn")}>
          <Input value={f.serviceFqdn} onChange={(_, d) => set("serviceFqdn", d.value)} />
        </Field>
        <Field label={LABELS.region} {...errorProps(errors, "region")}>
          <Input value={f.region} onChange={(_, d) => set("region", d.value)} />
        </Field>
        <Field label={LABELS.resourceGroup} {...errorProps(errors, "resourceGroup")}>
          <Input value={f.resourceGroup} onChange={(_, d) => set("resourceGroup", d.value)} />
        </Field>
        <Field label={LABELS.instances} hint="1 to 16" {...errorProps(errors, "instances")}>
          <SpinButton value={f.instances} min={1} max={16} onChange={(_, d) => set("instances", d.value ?? Number(d.displayValue) ?? 1)} />
        </Field>
        <fieldset style={{ border: "1px solid #ccc", padding: 8 }}>
          <legend>Certificates: trusted root and intermediate CAs of client certificates</legend>
          <Field label={LABELS.trustedRoots} hint={caList(f.trustedRoots) || "none"} {...errorProps(errors, "trustedRoots")}>
            {(p) => <FileInput {...p} accept=".pem,.crt,.cer" multiple files={f.trustedRootFiles} onFiles={(l) => void addCas("trustedRoots", l)} />}
          </Field>
          <Field label={LABELS.intermediates} hint={caList(f.intermediates) || "none"} {...errorProps(errors, "intermediates")}>
            {(p) => <FileInput {...p} accept=".pem,.crt,.cer" multiple files={f.intermediateFiles} onFiles={(l) => void addCas("intermediates", l)} />}
          </Field>
          {(f.trustedRoots.length > 0 || f.intermediates.length > 0) && (
            <Button size="small" onClick={() => setF((x) => ({ ...x, trustedRoots: [], intermediates: [], trustedRootFiles: [], intermediateFiles: [] }))}>
              Clear certificates
            </Button>
          )}
        </fieldset>
        <Field {...errorProps(errors, "crlCheck")}>
          <Checkbox checked={f.crlCheck} onChange={(_, d) => set("crlCheck", Boolean(d.checked))} label={LABELS.crlCheck} />
        </Field>
        {f.provider === "local" && (
          <fieldset style={{ border: "1px solid #ccc", padding: 8 }}>
            <legend>Local deployment</legend>
            <Field label={LABELS.listenHost} {...errorProps(errors, "listenHost", "deploy")}>
              <Input value={f.listenHost} onChange={(_, d) => set("listenHost", d.value)} />
            </Field>
            <Field label={LABELS.publicHost} {...errorProps(errors, "publicHost", "instanceHost")}>
              <Input value={f.publicHost} onChange={(_, d) => set("publicHost", d.value)} />
            </Field>
            <Field label={LABELS.clientPortBase} {...errorProps(errors, "clientPortBase")}>
              <Input value={f.clientPortBase} onChange={(_, d) => set("clientPortBase", d.value)} inputMode="numeric" />
            </Field>
            <Field label={LABELS.tunnelPortBase} {...errorProps(errors, "tunnelPortBase")}>
              <Input value={f.tunnelPortBase} onChange={(_, d) => set("tunnelPortBase", d.value)} inputMode="numeric" />
            </Field>
          </fieldset>
        )}
        {f.provider !== "kubernetes" && (
          <fieldset style={{ border: "1px solid #ccc", padding: 8 }}>
            <legend>Metrics</legend>
            <Field label={LABELS.metricsPortBase} hint="Instance i serves Prometheus metrics on this port + i." {...errorProps(errors, "metricsPortBase")}>
              <Input value={f.metricsPortBase} onChange={(_, d) => set("metricsPortBase", d.value)} inputMode="numeric" />
            </Field>
            <Field label={LABELS.metricsHost} {...errorProps(errors, "metricsHost")}>
              <Input value={f.metricsHost} onChange={(_, d) => set("metricsHost", d.value)} />
            </Field>
          </fieldset>
        )}
        {f.provider === "kubernetes" && (
          <fieldset style={{ border: "1px solid #ccc", padding: 8 }}>
            <legend>Kubernetes deployment</legend>
            <Field label={LABELS.kubeconfig} hint="A file on the site server naming the cluster and the credentials to apply with (deploy/kubernetes/rbac.yaml lists the permissions)" {...errorProps(errors, "kubeconfig", "kubernetes")}>
              <Input value={f.kubeconfig} onChange={(_, d) => set("kubeconfig", d.value)} />
            </Field>
            <Field label={LABELS.namespace} {...errorProps(errors, "namespace")}>
              <Input value={f.namespace} onChange={(_, d) => set("namespace", d.value)} />
            </Field>
            <Field label={LABELS.image} {...errorProps(errors, "image")}>
              <Input value={f.image} onChange={(_, d) => set("image", d.value)} />
            </Field>
          </fieldset>
        )}
      </>
    );
  else if (page === "Alerts")
    body = (
      <>
        <Field>
          <Checkbox checked={f.alert} onChange={(_, d) => set("alert", Boolean(d.checked))} label="Enable 14-day threshold for alerting" />
        </Field>
        <Field label={LABELS.thresholdGb} {...errorProps(errors, "thresholdGb", "trafficAlert")}>
          <Input value={f.thresholdGb} onChange={(_, d) => set("thresholdGb", d.value)} disabled={!f.alert} inputMode="decimal" />
        </Field>
        <Field label={LABELS.warningPct} {...errorProps(errors, "warningPct")}>
          <Input value={f.warningPct} onChange={(_, d) => set("warningPct", d.value)} disabled={!f.alert} inputMode="numeric" />
        </Field>
        <Field label={LABELS.criticalPct} {...errorProps(errors, "criticalPct")}>
          <Input value={f.criticalPct} onChange={(_, d) => set("criticalPct", d.value)} disabled={!f.alert} inputMode="numeric" />
        </Field>
        <Field {...errorProps(errors, "stopOnCritical")}>
          <Checkbox checked={f.stopOnCritical} disabled={!f.alert} onChange={(_, d) => set("stopOnCritical", Boolean(d.checked))} label={LABELS.stopOnCritical} />
        </Field>
      </>
    );
  else
    body = (
      <dl aria-label="Summary" style={{ display: "grid", gridTemplateColumns: "max-content 1fr", gap: "4px 16px", margin: 0 }}>
        {(
          [
            ["Azure environment", ENVIRONMENTS[f.cloud]],
            ["Provider", PROVIDERS[f.provider]],
            ...(f.provider === "kubernetes" ? [["Kubeconfig path", f.kubeconfig], ["Namespace", f.namespace]] : []),
            ["Certificate file", f.certSubject ? `${f.certFileName}: ${f.certSubject}` : f.certFileName],
            ["Service name", f.name],
            ["Service FQDN", f.serviceFqdn],
            ["Region", f.region],
            ["Resource group", f.resourceGroup || "(none)"],
            ["VM instance", String(f.instances)],
            ["Trusted root certificates", caList(f.trustedRoots) || "none"],
            ["Intermediate certificates", caList(f.intermediates) || "none"],
            ["Verify Client Certificate Revocation", f.crlCheck ? "Yes" : "No"],
            ...(f.provider !== "kubernetes" ? [["Metrics", f.metricsPortBase.trim() === "0" ? "Off" : `${f.metricsHost}:${f.metricsPortBase} (instance i: + i)`]] : []),
            ["14-day threshold for alerting", f.alert ? `${f.thresholdGb} GB, warning at ${f.warningPct}%, critical at ${f.criticalPct}%${f.stopOnCritical ? ", the service stops at critical" : ""}` : "Off"],
          ] as const
        ).map(([k, v]) => (
          <div key={k} style={{ display: "contents" }}>
            <dt style={{ fontWeight: 600 }}>{k}</dt>
            <dd style={{ margin: 0 }}>{v}</dd>
          </div>
        ))}
      </dl>
    );

  const i = PAGES.indexOf(page);
  // Refusals of fields on the other pages, so none goes unseen while this page is shown.
  const elsewhere = Object.entries(errors).flatMap(([k, m]) => (FIELD_PAGE[k] && FIELD_PAGE[k] !== page ? [[FIELD_PAGE[k], m] as const] : []));
  return (
    <Dialog open={open} onOpenChange={(_, d) => !d.open && onClose()} modalType="modal">
      <DialogSurface style={{ maxWidth: 720 }}>
        <DialogBody>
          <DialogTitle>Create Cloud Management Gateway Wizard</DialogTitle>
          <DialogContent>
            <nav aria-label="Wizard pages">
              <ol style={{ display: "flex", gap: 16, listStyle: "none", padding: 0, margin: "0 0 12px" }}>
                {PAGES.map((p) => (
                  <li key={p} aria-current={p === page ? "step" : undefined} style={{ fontWeight: p === page ? 700 : 400 }}>
                    {p}
                  </li>
                ))}
              </ol>
            </nav>
            <h2 style={{ fontSize: 18, margin: "0 0 8px" }}>{page}</h2>
            {errors.form && <ErrorBar error={new Error(errors.form)} />}
            {elsewhere.length > 0 && (
              <MessageBar intent="error">
                <MessageBarBody>
                  Also refused, on other pages: {elsewhere.map(([p, m]) => `${m} (${p})`).join("; ")}
                </MessageBarBody>
              </MessageBar>
            )}
            <div style={{ display: "grid", gap: 10 }}>{body}</div>
          </DialogContent>
          <DialogActions>
            <Button disabled={i === 0} onClick={() => setPage(PAGES[i - 1]!)}>
              Previous
            </Button>
            {page === "Summary" ? (
              <Button appearance="primary" disabled={busy} onClick={() => void create()}>
                Create
              </Button>
            ) : (
              <Button appearance="primary" onClick={next}>
                Next
              </Button>
            )}
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
