/**
 * `bundle create --dry-run --offline`: the plan from the config alone, with no connection opened.
 * Every item is listed with the pin the config itself gives (an image or base digest, a git commit,
 * a sha256) or marked as needing the network to pin (a tag, branch, version range, or `images: auto`
 * discovered from a chart's values), so a config can be reviewed where nothing is reachable.
 */
import type { BundleConfig, ChartSource, ProfileSource } from "../config/types.js";
import { formatReference } from "../oci/reference.js";
import { describeChartSource } from "../sources/charts/index.js";
import type { PlannedFile } from "../sources/files/index.js";
import type { OciLayoutStore } from "../store/layout.js";
import { VERSION } from "../version.js";
import { filePlanItem, gemPlanItems } from "./artifacts.js";
import type { PlanItem } from "./create.js";
import { TOOLS_DIR } from "./tools.js";

export const NEEDS_NETWORK = "(pinned at create)";
const COMMIT = /^[0-9a-f]{40}$/;

function item(
  kind: PlanItem["kind"],
  name: string,
  source: string,
  digest: string | undefined,
  platforms: string[] = [],
): PlanItem {
  return {
    kind,
    name,
    source,
    digest: digest ?? NEEDS_NETWORK,
    sourceDigest: "",
    platforms,
    size: 0,
    blobs: 0,
    cachedBytes: 0,
    cached: false,
    needsNetwork: digest === undefined,
  };
}

function profileItem(p: ProfileSource, describe: (p: ProfileSource) => string): PlanItem {
  const source = describe(p);
  const name = p.name ?? source;
  switch (p.type) {
    case "git":
      return item("profile", name, source, COMMIT.test(p.ref) ? `commit ${p.ref}` : undefined);
    case "url":
      return item("profile", name, source, p.sha256 ? `sha256:${p.sha256}` : undefined);
    case "path":
      return item("profile", name, source, "(packed from disk at create)");
    case "oci":
      return item("profile", name, source, p.reference.digest);
    case "supermarket":
      return item("profile", name, source, undefined);
  }
}

function chartItem(c: ChartSource, configDir: string): PlanItem {
  const source = describeChartSource(c, configDir);
  switch (c.type) {
    case "git":
      return item("chart", source, source, COMMIT.test(c.ref) ? `commit ${c.ref}` : undefined);
    case "path":
      return item("chart", source, source, "(packaged from disk at create)");
    case "oci":
      return item("chart", source, source, undefined);
    case "repo":
      return item("chart", source, source, undefined);
  }
}

/** The plan, and what the config leaves to the network (as warnings, one per kind of gap). */
export async function offlinePlan(
  config: BundleConfig,
  files: PlannedFile[],
  cache: OciLayoutStore,
  opts: {
    platforms: string[] | undefined;
    runnerName: string;
    describeProfile: (p: ProfileSource) => string;
  },
): Promise<{ plan: PlanItem[]; notes: string[] }> {
  const platformsOf = (given: string[]) =>
    opts.platforms && opts.platforms.length > 0 ? opts.platforms : given;
  const plan: PlanItem[] = [];
  for (const spec of config.images) {
    const r = spec.reference;
    const name = r.tag ? formatReference({ ...r, digest: undefined }) : formatReference(r);
    plan.push(item("image", name, spec.ref, r.digest, platformsOf(spec.platforms)));
  }
  if (config.runner) {
    const base = config.runner.reference;
    const p = item(
      "image",
      opts.runnerName,
      `${config.runner.base} + ${TOOLS_DIR}/airgap-${VERSION}.mjs`,
      base.digest ? "(built at create from the pinned base)" : undefined,
      platformsOf(config.runner.platforms),
    );
    plan.push(p);
  }
  for (const p of config.profiles) plan.push(profileItem(p, opts.describeProfile));
  for (const c of config.charts) plan.push(chartItem(c, config.dir));
  for (const g of gemPlanItems(config)) plan.push({ ...g, digest: NEEDS_NETWORK, needsNetwork: true });
  for (const f of files) {
    const p = await filePlanItem(f, cache);
    plan.push({ ...p, needsNetwork: !f.sha256 });
  }
  const notes: string[] = [];
  const auto = config.charts.filter((c) => (c.type === "git" || c.type === "path") && c.images === "auto");
  if (auto.length > 0) {
    notes.push(
      `${auto.length} chart(s) with images: auto add the images their values name at create; they are listed once the charts are fetched (run --dry-run without --offline)`,
    );
  }
  const open = plan.filter((p) => p.needsNetwork).length;
  notes.push(
    `offline plan: ${plan.length} items, ${open} need the network to pin (a tag, branch or version range that create resolves), ${plan.length - open} pinned by the config`,
  );
  return { plan, notes };
}
