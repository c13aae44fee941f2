/**
 * `airgap runner-image`: the import Job's image, built with no container engine from a base image
 * in a registry plus one layer holding the single-file airgap. Checked from the registry's side:
 * the base layers are unchanged, the added layer holds dist/airgap.mjs and nothing else, the config
 * runs it, only the asked platforms are built, and a rebuild gives the same digest.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  getBlob,
  getManifest,
  type PushedIndex,
  plainTarget,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";

const SINGLE = fileURLToPath(new URL("../../dist/airgap.mjs", import.meta.url));
const target = plainTarget();
const ns = uniqueRepo("runner");
let work: string;
let config: string;
let base: PushedIndex;

interface Index {
  manifests: { digest: string; platform?: { os: string; architecture: string } }[];
}
interface Manifest {
  config: { digest: string };
  layers: { digest: string; mediaType: string; size: number }[];
}

async function build(
  tag: string,
): Promise<{ reference: string; digest: string; platforms: string[]; layer: string }> {
  const r = await runCli([
    "runner-image",
    "--base",
    `${target.host}/${ns}/node:20`,
    "--to",
    `${target.host}/${ns}/cinc-airgap/airgap:${tag}`,
    "--config",
    config,
    "--json",
  ]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-runner-"));
  config = join(work, "registries.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1\nkind: Import\nregistries: [{ host: "${target.host}", plainHTTP: true }]\n`,
  );
  base = await pushIndex(target, `${ns}/node`, "20", {
    layerSizes: [40_000, 5_000],
    platforms: [
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64", variant: "v8" },
      { os: "linux", architecture: "s390x" },
    ],
  });
});

afterAll(async () => {
  await closeFixtures();
});

describe("airgap runner-image", () => {
  it("adds one layer holding the single-file airgap on top of each asked platform of the base", async () => {
    const result = await build(VERSION);
    expect(result.platforms.sort()).toEqual(["linux/amd64", "linux/arm64/v8"]);
    const repo = `${ns}/cinc-airgap/airgap`;
    const index = await getManifest(target, repo, VERSION);
    expect(index.digest).toBe(result.digest);
    const children = (JSON.parse(index.bytes.toString()) as Index).manifests;
    expect(children).toHaveLength(2);
    const baseChildren = (
      JSON.parse((await getManifest(target, `${ns}/node`, "20")).bytes.toString()) as Index
    ).manifests;
    const tool = readFileSync(SINGLE);
    for (const child of children) {
      const m = JSON.parse((await getManifest(target, repo, child.digest)).bytes.toString()) as Manifest;
      const baseChild = baseChildren.find((b) => b.platform?.architecture === child.platform?.architecture)!;
      const bm = JSON.parse(
        (await getManifest(target, `${ns}/node`, baseChild.digest)).bytes.toString(),
      ) as Manifest;
      expect(m.layers.slice(0, -1)).toEqual(
        bm.layers.map(({ digest, mediaType, size }) => ({ digest, mediaType, size })),
      );
      const added = m.layers.at(-1)!;
      expect(added.digest).toBe(result.layer);
      expect(added.mediaType).toBe("application/vnd.oci.image.layer.v1.tar");
      // the layer, unpacked with tar, is exactly the tool
      const dir = join(work, `x-${child.digest.slice(7, 19)}`);
      mkdirSync(dir);
      writeFileSync(join(dir, "layer.tar"), await getBlob(target, repo, added.digest));
      expect(
        execFileSync("tar", ["-tf", join(dir, "layer.tar")], { encoding: "utf8" })
          .trim()
          .split("\n"),
      ).toEqual(["opt/", "opt/cinc-airgap/", "opt/cinc-airgap/airgap.mjs"]);
      execFileSync("tar", ["-xf", join(dir, "layer.tar"), "-C", dir]);
      expect(readFileSync(join(dir, "opt/cinc-airgap/airgap.mjs")).equals(tool)).toBe(true);
      expect(
        execFileSync(process.execPath, [join(dir, "opt/cinc-airgap/airgap.mjs"), "--version"], {
          encoding: "utf8",
        }).trim(),
      ).toBe(VERSION);
      const cfg = JSON.parse((await getBlob(target, repo, m.config.digest)).toString()) as {
        config: { Entrypoint: string[]; User: string };
        rootfs: { diff_ids: string[] };
      };
      expect(cfg.config.Entrypoint).toEqual(["node", "/opt/cinc-airgap/airgap.mjs"]);
      expect(cfg.config.User).toBe("1000:1000");
      expect(cfg.rootfs.diff_ids.at(-1)).toBe(added.digest);
    }
    expect(base.digest).not.toBe(result.digest);
  });

  it("is deterministic: a rebuild from the same base and tool has the same digest", async () => {
    const first = await build(`${VERSION}-a`);
    const second = await build(`${VERSION}-b`);
    expect(second.digest).toBe(first.digest);
  });

  it("refuses a target without a tag (exit 2)", async () => {
    const r = await runCli([
      "runner-image",
      "--base",
      `${target.host}/${ns}/node:20`,
      "--to",
      `${target.host}/${ns}/cinc-airgap/airgap`,
      "--config",
      config,
    ]);
    expect(r.code, r.stderr).toBe(2);
  });
});
