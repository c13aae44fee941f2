import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  cosignTag,
  type PushedImage,
  type PushedIndex,
  plainTarget,
  pushCosignSignature,
  pushImage,
  pushIndex,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = plainTarget();
const host = target.host;
const ns = uniqueRepo("create");
let work: string;
let single: PushedImage;
let multi: PushedIndex;
let docker: PushedImage;
let sharedA: PushedImage;
let sharedB: PushedImage;
let sigDigest: string;

function config(extra = ""): string {
  const file = join(work, `bundle-${Math.random().toString(36).slice(2)}.config.yaml`);
  writeFileSync(
    file,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: create-test, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: ${host}
    plainHTTP: true
images:
  - ref: ${host}/${ns}/single:1.0
  - ref: ${host}/${ns}/multi:latest
  - ref: ${host}/${ns}/docker:v2s2
  - ref: ${host}/${ns}/shared-a:1
  - ref: ${host}/${ns}/shared-b:1
${extra}`,
  );
  return file;
}

function readJson<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

interface IndexJson {
  manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[];
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-create-"));
  single = await pushImage(target, `${ns}/single`, "1.0", { layerSizes: [300_000, 40_000] });
  sigDigest = (await pushCosignSignature(target, `${ns}/single`, single.digest)).digest;
  multi = await pushIndex(target, `${ns}/multi`, "latest", { layerSizes: [20_000] });
  docker = await pushImage(target, `${ns}/docker`, "v2s2", { layerSizes: [50_000], format: "docker" });
  const base = await pushImage(target, `${ns}/base`, "1", { layerSizes: [400_000, 200_000] });
  sharedA = await pushImage(target, `${ns}/shared-a`, "1", {
    layerSizes: [10_000],
    sharedLayers: base.layers,
  });
  sharedB = await pushImage(target, `${ns}/shared-b`, "1", {
    layerSizes: [11_000],
    sharedLayers: base.layers,
  });
});

afterAll(async () => {
  await closeFixtures();
});

describe("bundle create", () => {
  let dir: string;
  let cache: string;

  it("--dry-run --json prints the pinned plan and writes nothing", async () => {
    cache = join(work, "cache");
    const out = join(work, "plan-out");
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(),
      "-o",
      out,
      "--cache",
      cache,
      "--dry-run",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      plan: { name: string; digest: string; sourceDigest: string; cached: boolean }[];
    };
    const byName = new Map(plan.plan.map((p) => [p.name, p]));
    expect(byName.get(`${host}/${ns}/single:1.0`)?.digest).toBe(single.digest);
    expect(byName.get(`${host}/${ns}/docker:v2s2`)?.digest).toBe(docker.digest);
    expect(byName.get(`${host}/${ns}/multi:latest`)?.sourceDigest).toBe(multi.digest);
    expect(plan.plan.every((p) => p.cached === false)).toBe(true);
    expect(existsSync(out)).toBe(false);
    expect(
      existsSync(join(cache, "blobs", "sha256")) ? readdirSync(join(cache, "blobs", "sha256")) : [],
    ).toEqual([]);
  });

  it("writes a directory bundle: pinned digests, amd64-only index, one copy of shared layers, cosign .sig carried", async () => {
    dir = join(work, "dir");
    const r = await runCli(["bundle", "create", "-c", config(), "-o", dir, "--cache", cache]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ["oci-layout", "index.json", "bundle.json", "SHA256SUMS"])
      expect(existsSync(join(dir, f))).toBe(true);

    const index = readJson<IndexJson>(join(dir, "index.json"));
    const named = new Map(
      index.manifests.map((m) => [m.annotations?.["org.opencontainers.image.ref.name"], m]),
    );
    expect(named.get(`${host}/${ns}/single:1.0`)?.digest).toBe(single.digest);
    expect(named.get(`${host}/${ns}/docker:v2s2`)?.digest).toBe(docker.digest);
    expect(named.get(`${host}/${ns}/docker:v2s2`)?.mediaType).toBe(
      "application/vnd.docker.distribution.manifest.v2+json",
    );
    expect(named.get(`${host}/${ns}/single:${cosignTag(single.digest)}`)?.digest).toBe(sigDigest);

    // platform filter: a new index with linux/amd64 only; the source index digest recorded
    const multiRoot = named.get(`${host}/${ns}/multi:latest`)!;
    expect(multiRoot.digest).not.toBe(multi.digest);
    const filtered = readJson<{ manifests: { platform: { architecture: string } }[] }>(
      join(dir, "blobs", "sha256", multiRoot.digest.slice(7)),
    );
    expect(filtered.manifests.map((m) => m.platform.architecture)).toEqual(["amd64"]);
    const inventory = readJson<{
      items: { name: string; sourceDigest: string; platforms: string[]; tag?: string }[];
    }>(join(dir, "bundle.json"));
    const multiItem = inventory.items.find((i) => i.name === `${host}/${ns}/multi:latest`)!;
    expect(multiItem.sourceDigest).toBe(multi.digest);
    expect(multiItem.platforms).toEqual(["linux/amd64"]);
    expect(inventory.items.find((i) => i.name === `${host}/${ns}/single:1.0`)?.tag).toBe("1.0");
    const arm = multi.children.find((c) => c.platform?.architecture === "arm64")!;
    expect(existsSync(join(dir, "blobs", "sha256", arm.digest.slice(7)))).toBe(false);

    // dedup: the shared base layers are stored once, and the blobs hold only referenced bytes
    const baseLayer = sharedA.layers[0]!;
    expect(sharedB.layers[0]!.digest).toBe(baseLayer.digest);
    const blobs = readdirSync(join(dir, "blobs", "sha256"));
    expect(new Set(blobs).size).toBe(blobs.length);
    const listed = readFileSync(join(dir, "SHA256SUMS"), "utf8").trim().split("\n");
    expect(listed.filter((l) => l.endsWith(baseLayer.digest.slice(7)))).toHaveLength(1);

    // interop: coreutils and skopeo read it
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: dir });
    const raw = execFileSync("skopeo", ["inspect", "--raw", `oci:${dir}:${host}/${ns}/single:1.0`]);
    expect(raw.equals(single.manifestBytes)).toBe(true);
  });

  it("skopeo copies an image out of the bundle into a registry with its digest unchanged", async () => {
    const dest = `${host}/${ns}/from-bundle:1.0`;
    execFileSync("skopeo", [
      "copy",
      "--quiet",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${dir}:${host}/${ns}/single:1.0`,
      `docker://${dest}`,
    ]);
    const raw = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${dest}`]);
    expect(raw.equals(single.manifestBytes)).toBe(true);
  });

  it("-o - streams the tar to stdout, and it verifies", async () => {
    const r = await runCli(["bundle", "create", "-c", config(), "-o", "-", "--cache", cache]);
    expect(r.code, r.stderr).toBe(0);
    const file = join(work, "stdout.tar");
    writeFileSync(file, r.stdoutBytes);
    const v = await runCli(["bundle", "verify", file]);
    expect(v.code, v.stderr).toBe(0);
  });

  it("a warm rerun pulls nothing", async () => {
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(),
      "-o",
      join(work, "dir2"),
      "--cache",
      cache,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { stats: { pulledBytes: number; pulledBlobs: number } };
    expect(out.stats.pulledBytes).toBe(0);
    expect(out.stats.pulledBlobs).toBe(0);
    expect(readFileSync(join(work, "dir2", "index.json"), "utf8")).toBe(
      readFileSync(join(dir, "index.json"), "utf8"),
    );
  });

  it("an edit made in a bundle does not poison the cache: the next create re-pulls that blob", async () => {
    const edited = join(work, "edited");
    expect((await runCli(["bundle", "create", "-c", config(), "-o", edited, "--cache", cache])).code).toBe(0);
    const layer = join(edited, "blobs", "sha256", single.layers[0]!.digest.slice(7));
    const bytes = readFileSync(layer);
    bytes[100] = (bytes[100] ?? 0) ^ 1;
    writeFileSync(layer, bytes);
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      config(),
      "-o",
      join(work, "after-edit"),
      "--cache",
      cache,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { stats: { pulledBlobs: number } };
    expect(out.stats.pulledBlobs).toBe(1);
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: join(work, "after-edit") });
  });

  it("tar output: checksums first, and tar -xf gives exactly the directory form", async () => {
    const tar = join(work, "b.tar");
    const r = await runCli(["bundle", "create", "-c", config(), "-o", tar, "--cache", cache]);
    expect(r.code, r.stderr).toBe(0);
    const names = execFileSync("tar", ["-tf", tar], { encoding: "utf8" }).trim().split("\n");
    expect(names.slice(0, 4)).toEqual(["SHA256SUMS", "bundle.json", "oci-layout", "index.json"]);
    const x = join(work, "x");
    execFileSync("mkdir", ["-p", x]);
    execFileSync("tar", ["-xf", tar, "-C", x]);
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: x });
    expect(readdirSync(join(x, "blobs", "sha256")).sort()).toEqual(
      readdirSync(join(dir, "blobs", "sha256")).sort(),
    );
  });

  it("tar.zst and split parts round-trip through inspect", async () => {
    const zst = join(work, "b.tar.zst");
    expect((await runCli(["bundle", "create", "-c", config(), "-o", zst, "--cache", cache])).code).toBe(0);
    const split = join(work, "split.tar");
    const s = await runCli([
      "bundle",
      "create",
      "-c",
      config(),
      "-o",
      split,
      "--cache",
      cache,
      "--split",
      "1M",
    ]);
    expect(s.code, s.stderr).toBe(0);
    // the smallest split the CLI takes (1 MiB); this bundle is a little over it
    const parts = readdirSync(work).filter((f) => f.startsWith("split.tar.part-"));
    expect(parts.length).toBeGreaterThanOrEqual(2);
    for (const p of parts) expect(statSync(join(work, p)).size).toBeLessThanOrEqual(1024 * 1024);

    const fromDir = await runCli(["bundle", "inspect", dir, "--json"]);
    expect(fromDir.code, fromDir.stderr).toBe(0);
    const expected = JSON.parse(fromDir.stdout) as {
      items: { name: string; digest: string; sharedBytes: number }[];
    };
    expect(expected.items.map((i) => i.name)).toContain(`${host}/${ns}/shared-b:1`);
    const sharedItem = expected.items.find((i) => i.name === `${host}/${ns}/shared-a:1`)!;
    expect(sharedItem.sharedBytes).toBeGreaterThanOrEqual(600_000);
    for (const input of [zst, `${split}.parts.json`]) {
      const r = await runCli(["bundle", "inspect", input, "--json"]);
      expect(r.code, `${input}: ${r.stderr}`).toBe(0);
      const got = JSON.parse(r.stdout) as { items: { name: string; digest: string }[] };
      expect(got.items.map((i) => [i.name, i.digest])).toEqual(expected.items.map((i) => [i.name, i.digest]));
    }
    const human = await runCli(["bundle", "inspect", join(work, "b.tar")]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`${host}/${ns}/docker:v2s2`);
  });

  it("a config typo fails with file:line:column and exit 2", async () => {
    const file = join(work, "typo.yaml");
    writeFileSync(
      file,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: typo, version: 1.0.0 }
imgaes:
  - ref: ${host}/${ns}/single:1.0
`,
    );
    const r = await runCli(["bundle", "create", "-c", file, "-o", join(work, "typo-out"), "--cache", cache]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:4:1`);
    expect(r.stderr).toContain("imgaes");
    expect(existsSync(join(work, "typo-out"))).toBe(false);
  });
});

describe("bundle create resumes", () => {
  it("after the process is killed mid-pull, a rerun completes without pulling the finished blobs again", async () => {
    const big = await pushImage(target, `${ns}/big`, "1", {
      layerSizes: [40_000_000, 40_000_000, 40_000_000, 40_000_000],
    });
    const cache = join(work, "resume-cache");
    const file = join(work, "resume.yaml");
    writeFileSync(
      file,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: resume, version: 1.0.0 }
registries: [{ host: "${host}", plainHTTP: true }]
images:
  - ref: ${host}/${ns}/big:1
`,
    );
    const blobsDir = join(cache, "blobs", "sha256");
    // Kill as soon as the first layer has landed and another is still partial.
    let child: ChildProcess | undefined;
    const first = runCli(
      [
        "bundle",
        "create",
        "-c",
        file,
        "-o",
        join(work, "resume-out"),
        "--cache",
        cache,
        "--concurrency",
        "1",
      ],
      {
        killAfterMs: 60_000,
        onSpawn: (c) => {
          child = c;
        },
      },
    );
    const killed = await new Promise<boolean>((resolve) => {
      const timer = setInterval(() => {
        const files = existsSync(blobsDir) ? readdirSync(blobsDir) : [];
        const done = files.filter(
          (f) => !f.includes(".partial-") && big.layers.some((l) => l.digest.endsWith(f)),
        );
        if (done.length >= 1 && files.some((f) => f.includes(".partial-"))) {
          clearInterval(timer);
          child?.kill("SIGKILL");
          resolve(true);
        }
      }, 5);
      first.then(() => {
        clearInterval(timer);
        resolve(false);
      });
    });
    const r1 = await first;
    expect(killed, `first run ended on its own: ${r1.stderr}`).toBe(true);
    expect(existsSync(join(work, "resume-out"))).toBe(false);
    const landed = readdirSync(blobsDir).filter((f) => !f.includes(".partial-"));
    // every blob that landed in the cache is intact
    for (const f of landed) {
      const sum = execFileSync("sha256sum", [join(blobsDir, f)], { encoding: "utf8" }).slice(0, 64);
      expect(sum).toBe(f);
    }
    const r2 = await runCli([
      "bundle",
      "create",
      "-c",
      file,
      "-o",
      join(work, "resume-out"),
      "--cache",
      cache,
      "--json",
    ]);
    expect(r2.code, r2.stderr).toBe(0);
    const out = JSON.parse(r2.stdout) as { stats: { pulledBytes: number; skippedBlobs: number } };
    expect(out.stats.skippedBlobs).toBeGreaterThanOrEqual(1);
    expect(out.stats.pulledBytes).toBeLessThan(big.layers.reduce((n, l) => n + l.size, 0));
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: join(work, "resume-out") });
  });
});
