/**
 * The embedded CMG's instances in this process (`opencmg up`), as the local provider runs them in
 * processes: they follow the CMG at the site (instance count, `cmg stop`/`start`, delete), so a
 * stopped CMG stays stopped across `up` and a scaled one gets its instances without a restart.
 */
import { rmSync } from "node:fs";
import { writeCmgBundle } from "../cmg/bundle.ts";
import { claimLocalCmg } from "../cmg/local-runner.ts";
import { NotFoundError } from "../errors.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../gateway/instance.ts";
import { loadStartupFile } from "../gateway/startup-file.ts";
import type { CmgView } from "../site/services/cmgs.ts";
import type { OpenedSite } from "../site/site.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface EmbeddedInstances {
  /** Instances running now, by index. */
  running(): number;
  /** Looks at the site now and follows what changed (also runs every `pollMs`). */
  follow(): Promise<void>;
  close(): Promise<void>;
}

/**
 * @example
 * const instances = await runEmbeddedInstances(site, "opencmg");
 * // ... on stop:
 * await instances.close();
 */
export async function runEmbeddedInstances(site: OpenedSite, name: string, o: { pollMs?: number } = {}): Promise<EmbeddedInstances> {
  const log = site.logs.component(LOG_FILES.cmgSetup);
  const instances = new Map<number, GatewayInstance>();
  let key = "";
  let closed = false;

  // Its pid file says this process runs the instances: `cmg start` and `site serve` leave them to it,
  // and the CMG's status does not say that nothing runs them.
  const pidFile = claimLocalCmg(site.paths.data, name);
  const reconcile = async (view: CmgView | null): Promise<void> => {
    // Deleting: the delete waits for the pid file to go before it removes the CMG.
    if (!view || view.runState === "deleting") rmSync(pidFile, { force: true });
    const wanted = view && view.runState === "running" ? view.instanceCount : 0;
    const nextKey = JSON.stringify({ wanted, cert: view?.serverCertificate.thumbprint });
    if (nextKey === key) return;
    key = nextKey;
    for (const [i, inst] of instances) {
      if (i < wanted) continue;
      instances.delete(i);
      await inst.stop({ graceMs: 2000 });
    }
    if (!view || wanted === 0) return;
    // Rewritten for every change: a renewed certificate is what an instance started later begins with.
    const bundle = await writeCmgBundle(site, view);
    for (let i = 0; i < wanted; i++) {
      if (!instances.has(i)) instances.set(i, await startGatewayInstance(loadStartupFile(bundle.files[i]!), { log: gatewayLogs(site.logs) }));
    }
  };

  const read = async (): Promise<CmgView | null> => {
    try {
      return await site.services.cmgs.show(name);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  };

  let following: Promise<void> = Promise.resolve();
  const follow = (): Promise<void> =>
    (following = following.then(async () => {
      if (!closed) await reconcile(await read());
    }).catch((e: unknown) => log.warn(`Could not follow CMG ${name} at the site: ${(e as Error).message}`)));

  try {
    await reconcile(await read());
  } catch (e) {
    rmSync(pidFile, { force: true });
    throw e;
  }
  const timer = setInterval(() => void follow(), o.pollMs ?? 2000);
  timer.unref();
  return {
    running: () => instances.size,
    follow,
    async close() {
      closed = true;
      clearInterval(timer);
      await following;
      await Promise.all([...instances.values()].map((i) => i.stop({ graceMs: 2000 })));
      instances.clear();
      rmSync(pidFile, { force: true });
    },
  };
}
