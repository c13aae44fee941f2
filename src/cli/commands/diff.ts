import type { InventoryItem } from "../../bundle/inventory.js";
import { readBundleSummary } from "../../bundle/summary.js";
import { type S3Flags, s3OptionsFrom } from "../inputs.js";
import { humanBytes, printJson, printLine } from "../output.js";

interface Change {
  name: string;
  kind: string;
  old?: string;
  new?: string;
  /** Charts and gems are named by version: a new version of one is a change from the old version. */
  oldVersion?: string;
  newVersion?: string;
}

/** Kinds whose root name is `REPOSITORY:VERSION`, one version per bundle. */
const VERSIONED = new Set(["chart", "gem"]);

const repositoryOf = (name: string) => name.slice(0, name.lastIndexOf(":"));
const tagOf = (name: string) => name.slice(name.lastIndexOf(":") + 1);

/** A removed and an added chart (or gem) of the same repository are one item at a new version. */
function pairVersions(added: Change[], removed: Change[], changed: Change[]): void {
  for (const a of [...added]) {
    if (!VERSIONED.has(a.kind)) continue;
    const r = removed.find((x) => x.kind === a.kind && repositoryOf(x.name) === repositoryOf(a.name));
    if (!r) continue;
    added.splice(added.indexOf(a), 1);
    removed.splice(removed.indexOf(r), 1);
    changed.push({
      name: repositoryOf(a.name),
      kind: a.kind,
      old: r.old!,
      new: a.new!,
      oldVersion: tagOf(r.name),
      newVersion: tagOf(a.name),
    });
  }
}

/** Compare two bundles by their inventories: items added, removed and changed, and the bytes that differ. */
export async function runDiff(
  oldInput: string,
  newInput: string,
  flags: { json?: boolean } & S3Flags,
): Promise<void> {
  const s3 = s3OptionsFrom(flags);
  const [a, b] = await Promise.all([
    readBundleSummary(oldInput, { s3 }),
    readBundleSummary(newInput, { s3 }),
  ]);
  const byName = (items: InventoryItem[]) => new Map(items.map((i) => [i.name, i]));
  const oldItems = byName(a.inventory.items);
  const newItems = byName(b.inventory.items);
  const added: Change[] = [];
  const removed: Change[] = [];
  const changed: Change[] = [];
  const unchanged: string[] = [];
  for (const [name, item] of newItems) {
    const before = oldItems.get(name);
    if (!before) added.push({ name, kind: item.kind, new: item.digest });
    else if (before.digest !== item.digest)
      changed.push({ name, kind: item.kind, old: before.digest, new: item.digest });
    else unchanged.push(name);
  }
  for (const [name, item] of oldItems)
    if (!newItems.has(name)) removed.push({ name, kind: item.kind, old: item.digest });
  pairVersions(added, removed, changed);
  const blobs = (sizes: Map<string, number>) =>
    new Map([...sizes].filter(([p]) => p.startsWith("blobs/sha256/")));
  const oldBlobs = blobs(a.sizes);
  const newBlobs = blobs(b.sizes);
  const newOnly = [...newBlobs].filter(([p]) => !oldBlobs.has(p));
  const newBytes = newOnly.reduce((n, [, s]) => n + s, 0);
  if (flags.json) {
    printJson({
      old: oldInput,
      new: newInput,
      added,
      removed,
      changed,
      unchanged,
      newBlobs: newOnly.length,
      newBytes,
    });
    return;
  }
  const out = process.stdout;
  for (const c of added) printLine(`+ ${c.kind} ${c.name} ${c.new}`, out);
  for (const c of removed) printLine(`- ${c.kind} ${c.name} ${c.old}`, out);
  for (const c of changed) {
    const versions = c.oldVersion ? ` ${c.oldVersion} → ${c.newVersion}` : "";
    printLine(`~ ${c.kind} ${c.name}${versions} ${c.old} → ${c.new}`, out);
  }
  printLine(
    `${added.length} added, ${removed.length} removed, ${changed.length} changed, ${unchanged.length} unchanged; ${newOnly.length} blobs (${humanBytes(newBytes)}) in ${newInput} are not in ${oldInput}`,
    out,
  );
}
