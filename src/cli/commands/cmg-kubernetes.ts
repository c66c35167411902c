/** `cmg manifests NAME --kubernetes`: what a cluster needs for a kubernetes-provider CMG, as YAML. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import type { CliContext } from "../context.ts";

export function registerCmgManifests(cmg: Command, ctx: CliContext): void {
  cmg
    .command("manifests <name>")
    .description("write what a Kubernetes cluster needs to run a kubernetes-provider CMG (StatefulSet, Services, Secrets with its keys, PodDisruptionBudget) as YAML")
    .option("--kubernetes", "Kubernetes objects (the only format; required)")
    .option("--namespace <ns>", "the namespace (default and only value: the CMG's)")
    .option("--image <ref>", "the gateway image (default: the CMG's; deploy/container/build.sh builds it)")
    .option("--out <dir>", "write one file per object and a kustomization.yaml there (default: all on standard output)")
    .action(async (name: string, o: { kubernetes?: boolean; namespace?: string; image?: string; out?: string }, cmd: Command) => {
      if (o.kubernetes !== true) throw new ValidationError("kubernetes", "is required: --kubernetes (the manifests' format)");
      const { cmgKubernetesManifests } = await import("../../cmg/kubernetes/cmg-manifests.ts");
      const { dumpYaml } = await import("@kubernetes/client-node");
      await ctx.withSite(cmd, async (s) => {
        const { cmg: view, objects } = await cmgKubernetesManifests(s, name, { namespace: o.namespace, image: o.image });
        const files = objects.map((obj, i) => ({ file: `${String(i).padStart(2, "0")}-${obj.kind!.toLowerCase()}-${obj.metadata!.name!}.yaml`, yaml: dumpYaml(obj), secret: obj.kind === "Secret" }));
        if (o.out === undefined) {
          ctx.io.out.write(files.map((f) => f.yaml).join("---\n"));
          return;
        }
        const dir = resolve(o.out);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // The Secrets hold the instances' private keys: readable by this user only.
        for (const f of files) writeFileSync(join(dir, f.file), f.yaml, { mode: f.secret ? 0o600 : 0o644 });
        writeFileSync(join(dir, "kustomization.yaml"), dumpYaml({ apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources: files.map((f) => f.file) }));
        const result = { dir, files: files.map((f) => f.file), namespace: view.deploy.kubernetes!.namespace };
        ctx.print(cmd, result, () => `Wrote ${files.length} object(s) for CMG ${view.name} to ${dir} (the Secrets hold its private keys: keep the folder private); apply with kubectl apply -k ${dir} (namespace ${result.namespace}).\n`);
      });
    });
}
