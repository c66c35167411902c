/**
 * Automatic Deployment Rules > Edit and Delete, as `opencmg adr edit NAME` (PATCH /api/v1/adrs/:name)
 * and `opencmg adr delete NAME` (DELETE; its recorded download results go with it, the content
 * library keeps the files). Both dialogs stay mounted and open for a rule (see AccountPassword.tsx).
 */
import { useState, type FormEvent } from "react";
import { Button, Checkbox, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Input } from "@fluentui/react-components";
import { api, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, fieldErrors } from "../ui.tsx";

type Adr = Shape<"Adr">;

/** The rule's settings, in the words of the Create Automatic Deployment Rule wizard. */
export const ADR_LABELS: Record<string, string> = {
  name: "Name",
  server: "Software update point",
  products: "Products (comma-separated)",
  classifications: "Update classifications (comma-separated)",
  titleContains: "Title contains",
  runAfterSync: "Run the rule after any software update point synchronization",
};
export const commaList = (v: string): string[] => v.split(",").map((x) => x.trim()).filter(Boolean);

export function EditRuleDialog({ rule, onClose, onSaved }: { rule: Adr | undefined; onClose: () => void; onSaved: (message: string) => void }) {
  return (
    <Dialog open={rule !== undefined} onOpenChange={(_, d) => !d.open && onClose()}>
      <DialogSurface>{rule && <EditRuleForm key={rule.name} rule={rule} onClose={onClose} onSaved={onSaved} />}</DialogSurface>
    </Dialog>
  );
}

function EditRuleForm({ rule, onClose, onSaved }: { rule: Adr; onClose: () => void; onSaved: (message: string) => void }) {
  const [name, setName] = useState(rule.name);
  const [products, setProducts] = useState(rule.products.join(", "));
  const [classifications, setClassifications] = useState(rule.classifications.join(", "));
  const [title, setTitle] = useState(rule.titleContains ?? "");
  const [afterSync, setAfterSync] = useState(rule.runAfterSync);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const save = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const a = await api<Adr>("PATCH", `/api/v1/adrs/${encodeURIComponent(rule.name)}`, {
        name,
        products: commaList(products),
        classifications: commaList(classifications),
        titleContains: title.trim() ? title.trim() : null,
        runAfterSync: afterSync,
      });
      onSaved(`Saved automatic deployment rule ${a.name}.`);
    } catch (err) {
      setErrors(fieldErrors(err, Object.keys(ADR_LABELS), ADR_LABELS));
    }
  };
  const v = (f: string) => ({ validationMessage: errors[f], validationState: errors[f] ? ("error" as const) : ("none" as const) });
  return (
    <form onSubmit={(e) => void save(e)} aria-label={`Edit ${rule.name}`}>
      <DialogBody>
        <DialogTitle>Edit automatic deployment rule: {rule.name}</DialogTitle>
        <DialogContent style={{ display: "grid", gap: 8 }}>
          {errors.form && <ErrorBar error={new Error(errors.form)} />}
          <Field label={ADR_LABELS.name} {...v("name")}>
            <Input value={name} onChange={(_, d) => setName(d.value)} />
          </Field>
          <Field label={ADR_LABELS.products} hint="Empty: any product." {...v("products")}>
            <Input value={products} onChange={(_, d) => setProducts(d.value)} />
          </Field>
          <Field label={ADR_LABELS.classifications} hint="Empty: any classification." {...v("classifications")}>
            <Input value={classifications} onChange={(_, d) => setClassifications(d.value)} />
          </Field>
          <Field label={ADR_LABELS.titleContains} hint="Empty: any title." {...v("titleContains")}>
            <Input value={title} onChange={(_, d) => setTitle(d.value)} />
          </Field>
          <Field hint="Only while the rule is enabled; after a successful synchronization only." {...v("runAfterSync")}>
            <Checkbox label={ADR_LABELS.runAfterSync} checked={afterSync} onChange={(_, d) => setAfterSync(d.checked === true)} />
          </Field>
        </DialogContent>
        <DialogActions>
          <ChangeButton appearance="primary" type="submit">
            OK
          </ChangeButton>
          <Button onClick={onClose}>Cancel</Button>
        </DialogActions>
      </DialogBody>
    </form>
  );
}

/** Asks before deleting: the rule's recorded results go with it. */
export function DeleteRuleDialog({ rule, onClose, onDeleted }: { rule: Adr | undefined; onClose: () => void; onDeleted: (message: string) => void }) {
  const [error, setError] = useState<Error>();
  const remove = async () => {
    if (!rule) return;
    try {
      const r = await api<Shape<"AdrDeleted">>("DELETE", `/api/v1/adrs/${encodeURIComponent(rule.name)}`);
      setError(undefined);
      onDeleted(`Deleted automatic deployment rule ${r.name} and its ${r.resultsDeleted} recorded download result(s).`);
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Dialog open={rule !== undefined} onOpenChange={(_, d) => !d.open && (setError(undefined), onClose())}>
      <DialogSurface aria-label={rule ? `Delete ${rule.name}?` : undefined}>
        <DialogBody>
          <DialogTitle>Delete automatic deployment rule {rule?.name}?</DialogTitle>
          <DialogContent>
            <ErrorBar error={error} />
            <p>The rule and its recorded download results are deleted. The content library keeps the files it downloaded.</p>
          </DialogContent>
          <DialogActions>
            <ChangeButton appearance="primary" onClick={() => void remove()}>
              Delete
            </ChangeButton>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
