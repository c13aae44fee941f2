import type { InventoryItem } from "../../bundle/inventory.js";
import { readBundleSummary } from "../../bundle/summary.js";
import { humanBytes, printJson, printLine } from "../output.js";

interface Change {
  name: string;
  kind: string;
  old?: string;
  new?: string;
}

/** Compare two bundles by their inventories: items added, removed and changed, and the bytes that differ. */
export async function runDiff(oldInput: string, newInput: string, flags: { json?: boolean }): Promise<void> {
  const [a, b] = await Promise.all([readBundleSummary(oldInput), readBundleSummary(newInput)]);
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
  for (const c of changed) printLine(`~ ${c.kind} ${c.name} ${c.old} → ${c.new}`, out);
  printLine(
    `${added.length} added, ${removed.length} removed, ${changed.length} changed, ${unchanged.length} unchanged; ${newOnly.length} blobs (${humanBytes(newBytes)}) in ${newInput} are not in ${oldInput}`,
    out,
  );
}
