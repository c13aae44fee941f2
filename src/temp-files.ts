import { rmSync } from "node:fs";

/**
 * Temporary files and folders being written right now (`*.partial-*`). Writers remove their own on
 * any failure; this list exists for the one case where they cannot: the process is made to exit
 * before their cleanup ran (an interrupt that the running work did not honour in time).
 */
const live = new Set<string>();

/** Note a temporary path; the returned function forgets it again (call it once it is renamed or removed). */
export function trackTemp(path: string): () => void {
  live.add(path);
  return () => {
    live.delete(path);
  };
}

/**
 * Remove every temporary path still noted, synchronously: for the last moments before exit. The paths
 * stay noted: a file whose creation was already under way can appear after this, so callers run it
 * again a little later.
 */
export function removeTempsNow(): void {
  for (const path of live) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort: the process is exiting
    }
  }
}
