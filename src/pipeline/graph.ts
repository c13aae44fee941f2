import { childrenOf, type Descriptor, parseManifest } from "../oci/descriptor.js";
import { isManifestLike, MAX_MANIFEST_BYTES } from "../oci/mediatypes.js";
import type { ReadOnlyStore } from "../store/store.js";
import { readBounded } from "../store/streams.js";

/**
 * Every descriptor of the graph below `root` (root included), children before parents, each once.
 * `seen` is shared across calls to order several graphs into one sequence without repeats.
 */
export async function collectGraph(
  store: ReadOnlyStore,
  root: Descriptor,
  seen: Map<string, Descriptor> = new Map(),
  out: Descriptor[] = [],
  signal?: AbortSignal,
): Promise<Descriptor[]> {
  if (seen.has(root.digest)) return out;
  if (isManifestLike(root.mediaType)) {
    const bytes = await readBounded(await store.fetch(root, signal), MAX_MANIFEST_BYTES, root.digest);
    for (const child of childrenOf(parseManifest(bytes, root))) {
      await collectGraph(store, child, seen, out, signal);
    }
  }
  if (!seen.has(root.digest)) {
    seen.set(root.digest, root);
    out.push(root);
  }
  return out;
}
