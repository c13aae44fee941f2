import { readFileSync } from "node:fs";

/** Set by the single-file build (scripts/build-single.mjs), which travels without package.json. */
declare const __AIRGAP_VERSION__: string | undefined;

/** The package version, read once from package.json next to dist/ or src/. */
export const VERSION: string =
  typeof __AIRGAP_VERSION__ === "string"
    ? __AIRGAP_VERSION__
    : (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
        .version;
