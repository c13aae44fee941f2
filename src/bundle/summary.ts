import { IntegrityError } from "../errors.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { openBundle } from "./archive/reader.js";
import { INVENTORY_FILE, type Inventory, parseInventory } from "./inventory.js";
import { METADATA_MAX_BYTES, overLimitMessage } from "./limits.js";

/**
 * Read the inventory and every file's size; streams are read once to the end. Nothing here is
 * verified (inspect, diff and create --since read it as it is): bundle.json is read only up to
 * METADATA_MAX_BYTES, and what it says must be printed through the terminal sanitizer.
 */
export async function readBundleSummary(
  input: string,
  opts: { s3?: ArtifactRepositoryOptions } = {},
): Promise<{ inventory: Inventory; sizes: Map<string, number> }> {
  const reader = await openBundle(input, opts);
  try {
    const sizes = new Map<string, number>();
    let inventory: Inventory | undefined;
    if (reader.seekable) {
      for (const f of await reader.list()) sizes.set(f.path, f.size);
      inventory = parseInventory(await reader.readSmall(INVENTORY_FILE, METADATA_MAX_BYTES));
    } else {
      for await (const entry of reader.entries()) {
        sizes.set(entry.path, entry.size);
        if (entry.path === INVENTORY_FILE) {
          if (entry.size > METADATA_MAX_BYTES) {
            throw new IntegrityError(
              "MALFORMED",
              overLimitMessage(INVENTORY_FILE, entry.size, METADATA_MAX_BYTES),
              INVENTORY_FILE,
            );
          }
          const chunks: Buffer[] = [];
          for await (const c of entry.stream) chunks.push(c as Buffer);
          inventory = parseInventory(Buffer.concat(chunks));
        } else {
          entry.stream.resume();
          await new Promise((r) => entry.stream.once("end", r));
        }
      }
    }
    if (!inventory)
      throw new IntegrityError("MISSING_FILE", `${input} has no ${INVENTORY_FILE}`, INVENTORY_FILE);
    return { inventory, sizes };
  } finally {
    await reader.close();
  }
}
