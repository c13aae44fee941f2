/**
 * Vitest global setup: loads the test servers' variables from .test-state/env into process.env
 * (values already set win), before the test workers are forked so they inherit them.
 * When integration tests are selected and the servers are not running, stops the run with a message
 * that says what to do instead of letting every test fail on a connection error.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { START_HINT } from "./env.js";

export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).replace(/^export\s+/, "");
    let value = line.slice(eq + 1);
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    out[key] = value;
  }
  return out;
}

async function integrationSelected(project: TestProject): Promise<boolean> {
  // The CLI's file filters (e.g. `vitest run test/unit`) are not handed to globalSetup; the root
  // Vitest instance keeps them.
  const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern ?? [];
  const { testFiles } = await project.globTestFiles(filters);
  return testFiles.some((f) => f.split(path.sep).join("/").includes("/test/integration/"));
}

export default async function setup(project: TestProject): Promise<void> {
  const root = project.config.root;
  const file = path.join(root, ".test-state", "env");
  if (existsSync(file)) {
    for (const [key, value] of Object.entries(parseEnvFile(readFileSync(file, "utf8")))) {
      if (process.env[key] === undefined) process.env[key] = value;
    }
    // A machine restart or a crash leaves the file behind with nothing listening: say so once,
    // rather than in every test as a refused connection.
    const script = path.join(root, "scripts", "test-servers.sh");
    if ((await integrationSelected(project)) && existsSync(script)) {
      const status = spawnSync("bash", [script, "status"], { encoding: "utf8" });
      if (status.status !== 0) {
        throw new Error(
          `test servers in ${path.dirname(file)} are not all running:\n${status.stdout}${status.stderr}` +
            "restart them: bash scripts/test-servers.sh stop && bash scripts/test-servers.sh start",
        );
      }
    }
    return;
  }
  if (process.env.AIRGAP_TEST_REGISTRY_PLAIN) return;
  if (await integrationSelected(project)) {
    throw new Error(
      `integration tests need the real test servers, and ${file} does not exist: ${START_HINT}`,
    );
  }
}
