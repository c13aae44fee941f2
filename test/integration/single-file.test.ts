/**
 * The single-file build (dist/airgap.mjs, written by `npm run build`) runs on Node alone, from a
 * folder with no node_modules, and every bundle carries it as tools/airgap-VERSION.mjs, listed in
 * SHA256SUMS: verify accepts it (and refuses anything unlisted beside it), import ignores it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";
import { createBundle, generateKey, writeBundleConfig } from "./import-helpers.js";

const SINGLE = fileURLToPath(new URL("../../dist/airgap.mjs", import.meta.url));
const TOOL = `tools/airgap-${VERSION}.mjs`;
const target = plainTarget();
const ns = uniqueRepo("single");
const env = { AIRGAP_REQUIRE_SIGNATURE: undefined };
let work: string;
let lonely: string;
let keys: { key: string; pub: string };
let dir: string;
let tar: string;

/** Node with nothing but the file: an empty folder, no NODE_PATH, no package.json around. */
function runAlone(file: string, args: string[], input?: Buffer) {
  const r = spawnSync(process.execPath, [file, ...args], {
    cwd: lonely,
    env: { ...process.env, NODE_PATH: "", AIRGAP_REQUIRE_SIGNATURE: "" },
    input,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every repository of the plain test registry (the catalog is paginated). */
async function plainCatalog(): Promise<string[]> {
  const host = needEnv("AIRGAP_TEST_REGISTRY_PLAIN");
  const out: string[] = [];
  let url: string | undefined = `http://${host}/v2/_catalog?n=1000`;
  while (url) {
    const res: Response = await fetch(url);
    expect(res.status).toBe(200);
    out.push(...(((await res.json()) as { repositories: string[] | null }).repositories ?? []));
    const next: RegExpExecArray | null = /<([^>]+)>/.exec(res.headers.get("link") ?? "");
    url = next ? new URL(next[1]!, `http://${host}`).toString() : undefined;
  }
  return out;
}

beforeAll(async () => {
  if (!existsSync(SINGLE)) throw new Error(`${SINGLE} is missing: run npm run build`);
  work = mkdtempSync(join(tmpdir(), "airgap-single-"));
  lonely = mkdtempSync(join(tmpdir(), "airgap-alone-"));
  copyFileSync(SINGLE, join(lonely, "airgap.mjs"));
  await pushImage(target, `${ns}/auditor`, "6.8.24", { layerSizes: [30_000] });
  keys = await generateKey(work, "cosign");
  const cfg = writeBundleConfig(work, "single", [`${target.host}/${ns}/auditor:6.8.24`]);
  dir = join(work, "bundle");
  tar = join(work, "bundle.tar");
  await createBundle(cfg, dir, { key: keys.key, cache: join(work, "cache") });
  await createBundle(cfg, tar, { key: keys.key, cache: join(work, "cache") });
});

afterAll(async () => {
  await closeFixtures();
});

describe("the single-file airgap", () => {
  it("runs with no node_modules: --version, and bundle verify of a signed bundle", () => {
    expect(existsSync(join(lonely, "node_modules"))).toBe(false);
    const v = runAlone(join(lonely, "airgap.mjs"), ["--version"]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(VERSION);
    for (const b of [dir, tar]) {
      const r = runAlone(join(lonely, "airgap.mjs"), ["bundle", "verify", b, "--key", keys.pub]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/OK; signature verified/);
    }
  });

  it("every bundle carries it as tools/airgap-VERSION.mjs, listed in SHA256SUMS (sha256sum -c agrees)", () => {
    expect(readFileSync(join(dir, TOOL)).equals(readFileSync(SINGLE))).toBe(true);
    const sums = readFileSync(join(dir, "SHA256SUMS"), "utf8");
    expect(sums).toMatch(new RegExp(`^[0-9a-f]{64}  ${TOOL.replace(/\./g, "\\.")}$`, "m"));
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: dir });
    const listed = execFileSync("tar", ["-tf", tar], { encoding: "utf8" }).trim().split("\n");
    expect(listed.at(-1)).toBe(TOOL);
  });

  it("the carried copy runs on the isolated side and verifies the bundle it came in", () => {
    const r = runAlone(join(dir, TOOL), ["bundle", "verify", dir, "--key", keys.pub]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("verify refuses a changed tool and an unlisted file beside it (exit 3, naming the file)", async () => {
    const changed = join(work, "changed");
    cpSync(dir, changed, { recursive: true });
    writeFileSync(join(changed, TOOL), `${readFileSync(join(dir, TOOL), "utf8")}\n// added\n`);
    const c = await runCli(["bundle", "verify", changed, "--key", keys.pub], { env });
    expect(c.code, c.stderr).toBe(3);
    expect(c.stderr).toContain(TOOL);
    const extra = join(work, "extra");
    cpSync(dir, extra, { recursive: true });
    writeFileSync(join(extra, "tools", "helper.mjs"), "console.log(1)\n");
    const e = await runCli(["bundle", "verify", extra, "--key", keys.pub], { env });
    expect(e.code, e.stderr).toBe(3);
    expect(e.stderr).toMatch(/UNLISTED_FILE tools\/helper\.mjs/);
  });

  it("import, from a file and from a pipe, pushes the images and leaves the tool out of the registry", async () => {
    const registry = `${needEnv("AIRGAP_TEST_REGISTRY_PLAIN")}/${uniqueRepo("single-dst")}`;
    const fromFile = runAlone(join(lonely, "airgap.mjs"), [
      "bundle",
      "import",
      tar,
      "--key",
      keys.pub,
      "--registry",
      registry,
      "--plain-http",
      "--out",
      join(work, "out-file"),
      "--json",
    ]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    const piped = await runCli(
      [
        "bundle",
        "import",
        "-",
        "--key",
        keys.pub,
        "--registry",
        registry,
        "--plain-http",
        "--out",
        join(work, "out-pipe"),
        "--json",
      ],
      { env, input: readFileSync(tar) },
    );
    expect(piped.code, piped.stderr).toBe(0);
    for (const out of [fromFile.stdout, piped.stdout]) {
      const r = JSON.parse(out) as { images: { target: string }[] };
      expect(r.images.map((i) => i.target)).toEqual([`${registry}/${ns}/auditor:6.8.24`]);
    }
    const prefix = registry.split("/")[1]!;
    expect((await plainCatalog()).filter((r) => r.startsWith(`${prefix}/`))).toEqual([
      `${prefix}/${ns}/auditor`,
    ]);
  });
});
