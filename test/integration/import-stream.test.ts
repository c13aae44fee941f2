import { copyFileSync, createReadStream, mkdtempSync, readFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  blobExists,
  closeFixtures,
  cosignTag,
  getManifest,
  listTags,
  manifestDigest,
  type PushedArtifact,
  type PushedImage,
  type PushedIndex,
  plainTarget,
  pushArtifact,
  pushCosignSignature,
  pushImage,
  pushIndex,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import {
  bundleRoots,
  catalog,
  closeAgents,
  copyTree,
  createBundle,
  flipByte,
  generateKey,
  isolatedEnv,
  tarEntry,
  writeBundleConfig,
} from "./import-helpers.js";

const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("stream");
let work: string;
let keys: { key: string; pub: string };
let stranger: { key: string; pub: string };
let dir: string;
let tar: string;
let zst: string;
let single: PushedImage;
let docker: PushedImage;
let multi: PushedIndex;
let multiRoot: string;
let sharedA: PushedImage;
let sharedB: PushedImage;
let sig: PushedImage;
let referrer: PushedArtifact;
let layerHex: string;
let env: NodeJS.ProcessEnv;

const src = (repo: string, tag: string) => `${source.host}/${ns}/${repo}:${tag}`;

function importArgs(input: string, prefix: string, key = keys.pub): string[] {
  return [
    "bundle",
    "import",
    input,
    "--registry",
    `${tls.host}/${prefix}`,
    "--key",
    key,
    "--ca-file",
    needEnv("AIRGAP_TEST_CA"),
    "--out",
    join(work, `out-${prefix}`),
  ];
}

async function expectImported(prefix: string): Promise<void> {
  expect((await getManifest(tls, `${prefix}/${ns}/single`, "1.0")).digest).toBe(single.digest);
  expect((await getManifest(tls, `${prefix}/${ns}/docker`, "v2s2")).digest).toBe(docker.digest);
  expect((await getManifest(tls, `${prefix}/${ns}/multi`, "3")).digest).toBe(multiRoot);
  expect((await getManifest(tls, `${prefix}/${ns}/shared-a`, "1")).digest).toBe(sharedA.digest);
  expect((await getManifest(tls, `${prefix}/${ns}/shared-b`, "1")).digest).toBe(sharedB.digest);
  // the base layer both share is in both target repositories
  for (const repo of ["shared-a", "shared-b"])
    expect(await blobExists(tls, `${prefix}/${ns}/${repo}`, sharedA.layers[0]!.digest), repo).toBe(true);
  // the cosign signature and the referrer travel through a pipe too
  expect((await getManifest(tls, `${prefix}/${ns}/single`, cosignTag(single.digest))).digest).toBe(
    sig.digest,
  );
  expect((await getManifest(tls, `${prefix}/${ns}/single`, referrer.digest)).digest).toBe(referrer.digest);
  const schema = JSON.parse(
    (await getManifest(tls, `${prefix}/${ns}/single`, single.digest.replace(":", "-"))).bytes.toString(
      "utf8",
    ),
  ) as { manifests: { digest: string }[] };
  expect(schema.manifests.map((m) => m.digest)).toContain(referrer.digest);
}

/** No tag under the prefix (blobs pushed before the damage was found may remain, untagged). */
async function expectNoTags(prefix: string): Promise<void> {
  const repos = (await catalog()).filter((r) => r.startsWith(`${prefix}/`));
  for (const repo of repos) expect(await listTags(tls, repo), repo).toEqual([]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-stream-"));
  env = isolatedEnv(work);
  single = await pushImage(source, `${ns}/single`, "1.0", { layerSizes: [400_000, 20_000] });
  layerHex = single.layers[0]!.digest.slice(7);
  docker = await pushImage(source, `${ns}/docker`, "v2s2", { layerSizes: [30_000], format: "docker" });
  multi = await pushIndex(source, `${ns}/multi`, "3", { layerSizes: [10_000] });
  sig = await pushCosignSignature(source, `${ns}/single`, single.digest);
  referrer = await pushArtifact(source, `${ns}/single`, {
    artifactType: "application/vnd.example.sbom.v1+json",
    files: [{ name: "sbom.json", content: '{"packages":["stream"]}' }],
    subject: single,
  });
  const base = await pushImage(source, `${ns}/base`, "1", { layerSizes: [150_000] });
  sharedA = await pushImage(source, `${ns}/shared-a`, "1", {
    layerSizes: [3_000],
    sharedLayers: base.layers,
  });
  sharedB = await pushImage(source, `${ns}/shared-b`, "1", {
    layerSizes: [4_000],
    sharedLayers: base.layers,
  });
  keys = await generateKey(work, "cosign");
  stranger = await generateKey(work, "stranger");
  const cfg = writeBundleConfig(work, "stream", [
    src("single", "1.0"),
    src("docker", "v2s2"),
    src("multi", "3"),
    src("shared-a", "1"),
    src("shared-b", "1"),
  ]);
  const cache = join(work, "cache");
  dir = join(work, "bundle");
  tar = join(work, "bundle.tar");
  zst = join(work, "bundle.tar.zst");
  await createBundle(cfg, dir, { key: keys.key, cache });
  await createBundle(cfg, tar, { key: keys.key, cache });
  await createBundle(cfg, zst, { key: keys.key, cache });
  multiRoot = bundleRoots(dir).get(src("multi", "3"))!.digest;
  expect(multiRoot).not.toBe(multi.digest);
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

describe("bundle import from a pipe and from compressed bundles", () => {
  it("imports a tar from standard input (-)", async () => {
    const prefix = uniqueRepo("stdin");
    const r = await runCli(importArgs("-", prefix), { env, input: createReadStream(tar) });
    expect(r.code, r.stderr).toBe(0);
    await expectImported(prefix);
  });

  it("a second import of the same tar from standard input uploads nothing", async () => {
    const prefix = uniqueRepo("again");
    const first = await runCli(importArgs("-", prefix), { env, input: createReadStream(tar) });
    expect(first.code, first.stderr).toBe(0);
    const r = await runCli([...importArgs("-", prefix), "--json"], { env, input: createReadStream(tar) });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { stats: { blobsUploaded: number; bytesUploaded: number } };
    expect(out.stats.blobsUploaded).toBe(0);
    expect(out.stats.bytesUploaded).toBe(0);
    await expectImported(prefix);
  });

  it("imports a .tar.zst from standard input", async () => {
    const prefix = uniqueRepo("stdinzst");
    const r = await runCli(importArgs("-", prefix), { env, input: createReadStream(zst) });
    expect(r.code, r.stderr).toBe(0);
    await expectImported(prefix);
  });

  it("imports a .tar.zst file", async () => {
    const prefix = uniqueRepo("zst");
    const r = await runCli(importArgs(zst, prefix), { env });
    expect(r.code, r.stderr).toBe(0);
    await expectImported(prefix);
  });
});

describe("bundle import of a damaged bundle pushes no tag", () => {
  it("a directory with a flipped byte: exit 3, no tag and no manifest of the image under the prefix", async () => {
    const prefix = uniqueRepo("bad");
    const b = join(work, "tampered");
    copyTree(dir, b);
    flipByte(join(b, "blobs", "sha256", layerHex));
    const r = await runCli(importArgs(b, prefix), { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
    await expectNoTags(prefix);
    expect(await manifestDigest(tls, `${prefix}/${ns}/single`, single.digest)).toBeUndefined();
  });

  it("a directory with a flipped byte and --verify-all: exit 3, nothing under the prefix", async () => {
    const prefix = uniqueRepo("badall");
    const b = join(work, "tampered-all");
    copyTree(dir, b);
    flipByte(join(b, "blobs", "sha256", layerHex));
    const r = await runCli([...importArgs(b, prefix), "--verify-all"], { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
    expect((await catalog()).filter((x) => x.startsWith(`${prefix}/`))).toEqual([]);
  });

  it("a tar file with a flipped byte: exit 3, no tag and no manifest of the image under the prefix", async () => {
    const prefix = uniqueRepo("badtar");
    const t = join(work, "tampered.tar");
    copyFileSync(tar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    flipByte(t, at.offset + 100);
    const r = await runCli(importArgs(t, prefix), { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
    await expectNoTags(prefix);
    expect(await manifestDigest(tls, `${prefix}/${ns}/single`, single.digest)).toBeUndefined();
  });

  it("a tar with a flipped byte on standard input: exit 3, no tag", async () => {
    const prefix = uniqueRepo("badpipe");
    const t = join(work, "tampered-pipe.tar");
    copyFileSync(tar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    flipByte(t, at.offset + at.size - 1);
    const r = await runCli(importArgs("-", prefix), { env, input: readFileSync(t) });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(layerHex.slice(0, 12));
    await expectNoTags(prefix);
  });

  it("a tar with a flipped byte in the last blob on standard input: exit 3, no tag", async () => {
    const prefix = uniqueRepo("badlast");
    const t = join(work, "tampered-last.tar");
    copyFileSync(tar, t);
    // the last blob of the tar is a parent (an image manifest or index): everything before it may be pushed
    const listed = readFileSync(join(dir, "SHA256SUMS"), "utf8");
    const names = (await import("node:child_process"))
      .execFileSync("tar", ["-tf", t], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter((n) => n.startsWith("blobs/sha256/"));
    const last = names[names.length - 1]!;
    expect(listed).toContain(last);
    const at = tarEntry(t, last);
    flipByte(t, at.offset + Math.floor(at.size / 2));
    const r = await runCli(importArgs("-", prefix), { env, input: readFileSync(t) });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(last.slice("blobs/sha256/".length, "blobs/sha256/".length + 12));
    await expectNoTags(prefix);
  });

  it("a truncated tar on standard input: exit 3, no tag", async () => {
    const prefix = uniqueRepo("short");
    const t = join(work, "truncated.tar");
    copyFileSync(tar, t);
    const at = tarEntry(t, `blobs/sha256/${layerHex}`);
    truncateSync(t, at.offset + 5000);
    const r = await runCli(importArgs("-", prefix), { env, input: readFileSync(t) });
    expect(r.code, r.stderr).toBe(3);
    await expectNoTags(prefix);
  });

  it("a good tar on standard input checked against the wrong key: exit 3, no tag", async () => {
    const prefix = uniqueRepo("wrongkey");
    const r = await runCli(importArgs("-", prefix, stranger.pub), { env, input: createReadStream(tar) });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/signature/i);
    await expectNoTags(prefix);
  });
});
