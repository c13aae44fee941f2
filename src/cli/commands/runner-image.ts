import { loadImportConfig } from "../../config/load.js";
import type { RegistryConfig } from "../../config/types.js";
import { buildRunnerImage } from "../../pipeline/runner-image.js";
import { carriedTools } from "../../pipeline/tools.js";
import { printJson } from "../output.js";

export interface RunnerImageFlags {
  base: string;
  to: string;
  platform: string;
  config?: string;
  caFile: string[];
  json?: boolean;
}

export async function runRunnerImage(flags: RunnerImageFlags): Promise<void> {
  const registries: RegistryConfig[] = flags.config ? (await loadImportConfig(flags.config)).registries : [];
  const [tool] = await carriedTools();
  const result = await buildRunnerImage({
    registries,
    caFiles: flags.caFile,
    base: flags.base,
    target: flags.to,
    platforms: flags.platform
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean),
    tool: tool!.bytes,
  });
  if (flags.json) printJson(result);
  else {
    process.stdout.write(`${result.reference}\n`);
    process.stderr.write(
      `runner image built from ${flags.base} for ${result.platforms.join(", ") || "its platform"}; added layer ${result.layer}\n`,
    );
  }
}
