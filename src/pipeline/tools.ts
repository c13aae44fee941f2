/**
 * The tool crosses the gap with every bundle: the single-file build of airgap (dist/airgap.mjs,
 * `npm run build`) is carried as tools/airgap-VERSION.mjs and listed in SHA256SUMS, so the isolated
 * side can check and run the very version that wrote the bundle with nothing but Node.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AirgapError } from "../errors.js";
import { VERSION } from "../version.js";

/** true in the single-file build, false in the chunked command (scripts/build-single.mjs); undefined from tsc. */
declare const __AIRGAP_SINGLE_FILE__: boolean | undefined;

export interface CarriedFile {
  /** Path inside the bundle. */
  path: string;
  /**
   * The file's bytes (a few MB), read once: what is hashed is what is written, and the bundle never
   * shares an inode with a build output that a rebuild rewrites in place.
   */
  bytes: Buffer;
  sha256: string;
}

export const TOOLS_DIR = "tools";

/**
 * Where the single-file build is: this very file when running as it, else dist/airgap.mjs of the
 * package (found upwards from dist/bin/chunks/ or from the tsc output).
 */
export function singleFileLocation(moduleUrl = import.meta.url): string | undefined {
  const here = fileURLToPath(moduleUrl);
  if (typeof __AIRGAP_SINGLE_FILE__ === "boolean" && __AIRGAP_SINGLE_FILE__) return here;
  let dir = dirname(here);
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "dist", "airgap.mjs");
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/** tools/airgap-VERSION.mjs, for the list of files create writes. */
export async function carriedTools(): Promise<CarriedFile[]> {
  const file = singleFileLocation();
  if (!file) {
    throw new AirgapError(
      "the single-file airgap (dist/airgap.mjs) that every bundle carries is missing: run npm run build",
      "TOOL_MISSING",
    );
  }
  const bytes = await readFile(file);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return [{ path: `${TOOLS_DIR}/airgap-${VERSION}.mjs`, bytes, sha256 }];
}
