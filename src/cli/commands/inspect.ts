import type { InventoryItem } from "../../bundle/inventory.js";
import { readBundleSummary } from "../../bundle/summary.js";
import { type S3Flags, s3OptionsFrom } from "../inputs.js";
import { forTerminal, humanBytes, printJson } from "../output.js";

interface Row {
  kind: string;
  name: string;
  source: string;
  digest: string;
  platforms: string[];
  size: number;
  sharedBytes: number;
  carried: number;
  /** What the item is beyond its OCI root: the profile, file, gem or chart record of bundle.json. */
  details?: Record<string, unknown>;
}

function platformsOf(item: InventoryItem): string[] {
  switch (item.kind) {
    case "image":
      return item.platforms;
    case "file":
      return item.file.platform === "any" ? [] : [item.file.platform];
    case "gem":
      return item.gem.platform === "ruby" ? [] : [item.gem.platform];
    default:
      return [];
  }
}

function detailsOf(item: InventoryItem): Record<string, unknown> | undefined {
  switch (item.kind) {
    case "profile":
      return { ...item.profile };
    case "file":
      return { ...item.file };
    case "gem":
      return { ...item.gem };
    case "chart":
      return { ...item.chart };
    default:
      return undefined;
  }
}

export async function runInspect(input: string, flags: { json?: boolean } & S3Flags): Promise<void> {
  const { inventory, sizes } = await readBundleSummary(input, { s3: s3OptionsFrom(flags) });
  const blobSize = (d: string) => sizes.get(`blobs/sha256/${d.slice(7)}`) ?? 0;
  const users = new Map<string, number>();
  for (const item of inventory.items)
    for (const b of new Set(item.blobs)) users.set(b, (users.get(b) ?? 0) + 1);
  const rows: Row[] = inventory.items.map((item) => ({
    kind: item.kind,
    name: item.name,
    source: item.source,
    digest: item.digest,
    platforms: platformsOf(item),
    size: item.size,
    sharedBytes: [...new Set(item.blobs)]
      .filter((b) => (users.get(b) ?? 0) > 1)
      .reduce((n, b) => n + blobSize(b), 0),
    carried: item.kind === "image" ? item.carried.length : 0,
    ...(detailsOf(item) ? { details: detailsOf(item) } : {}),
  }));
  const uniqueBytes = [...users.keys()].reduce((n, b) => n + blobSize(b), 0);
  const totalFiles = [...sizes.values()].reduce((n, s) => n + s, 0);
  if (flags.json) {
    printJson({
      bundle: input,
      format: inventory.format,
      metadata: inventory.metadata,
      created: inventory.created,
      tool: inventory.tool,
      items: rows,
      totals: { ...inventory.totals, uniqueBytes, fileBytes: totalFiles, files: sizes.size },
    });
    return;
  }
  const out = process.stdout;
  out.write(
    `${forTerminal(`${inventory.metadata.name} ${inventory.metadata.version}  (created ${inventory.created} by ${inventory.tool.name} ${inventory.tool.version})`)}\n\n`,
  );
  const table = [["KIND", "NAME", "DIGEST", "PLATFORMS", "SIZE", "SHARED", "CARRIED"]];
  for (const r of rows) {
    // cells are made terminal-safe before widths are measured, so escapes keep the columns straight
    table.push(
      [
        r.kind,
        r.name,
        String(r.digest).slice(0, 19),
        r.platforms.join(",") || "-",
        humanBytes(r.size),
        humanBytes(r.sharedBytes),
        String(r.carried),
      ].map((c) => forTerminal(String(c))),
    );
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table)
    out.write(
      `${row
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd()}\n`,
    );
  out.write(
    `\n${forTerminal(`${inventory.totals.items}`)} items, ${inventory.totals.blobs} blobs, ${humanBytes(uniqueBytes)} unique content, ${humanBytes(totalFiles)} in ${sizes.size} files\n`,
  );
}
