/**
 * `bundle import --shard I/N` with the built CLI: three shards started together into one registry
 * (and one HTTP raw artifact repository) give every digest, tag and blob that an unsharded import
 * gives into another registry; each item (and each file uploaded to the artifact repository, HTTP
 * or S3) is pushed by exactly one shard, even where shards share
 * blobs in one repository; every shard writes the same cluster configuration; a shard killed while
 * pushing completes when run again; a shard reading a tar from a pipe pushes its part only; --shard
 * 0/1 is the unsharded import; auto/N takes its index from JOB_COMPLETION_INDEX. Two shards of a
 * bundle with a profile, a chart and gems (one from a pipe) upload each artifact once and leave the
 * profiles index, gem source index and Helm index.yaml an unsharded import writes.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gemSourceFiles } from "../../src/sources/gems/index.js";
import { minimalChart, writeTree } from "../helpers/charts.js";
import { type CliResult, runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  blobExists,
  closeFixtures,
  listBlobs,
  listTags,
  manifestDigest,
  plainTarget,
  pushCosignSignature,
  pushImage,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { buildGem, describeGems, requireRuby, writeGemSource } from "../helpers/gems.js";
import { runAndStop } from "./crash-helpers.js";
import { closeAgents, generateKey, isolatedEnv, PASSWORD } from "./import-helpers.js";

const plain = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("shard");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface ImportJson {
  imported: boolean;
  shard?: { index: number; count: number; items: string[]; cost: number };
  images: { source: string; target: string; digest: string }[];
  files: { name: string; platform: string; sha256: string; url?: string; uploaded: boolean }[];
  profiles?: { name: string; version: string; url?: string; uploaded: boolean }[];
  charts?: { name: string; version: string; url?: string; uploaded: boolean }[];
  gems?: { name: string; version: string; url?: string; uploaded: boolean }[];
  stats: { blobsUploaded: number; manifestsPushed: number; bytesUploaded: number };
}

let work: string;
let keys: { key: string; pub: string };
let bundle: string;
let tarBundle: string;
let itemNames: string[];
/** The unsharded import into the TLS registry: source → target reference and digest. */
let reference: ImportJson;
let referencePrefix: string;
/** The three shards of the first test, by index. */
let shards: ImportJson[];
const files: Record<string, Buffer> = {};

function importArgs(input: string, registry: string, out: string, artifacts: string, extra: string[] = []) {
  return [
    "bundle",
    "import",
    input,
    "--registry",
    registry,
    "--key",
    keys.pub,
    "--artifacts",
    artifacts,
    "--concurrency",
    "3",
    "--out",
    out,
    "--json",
    ...extra,
  ];
}

const davEnv = () => ({
  AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
  AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
});

function parsed(r: CliResult, what: string): ImportJson {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as ImportJson;
}

/** `--shard I/N` into the plain registry under `prefix`, artifacts under DAV/prefix/ (or `artifacts`). */
function runShard(
  prefix: string,
  shard: string | undefined,
  opts: {
    input?: string;
    env?: NodeJS.ProcessEnv;
    extra?: string[];
    stdin?: string;
    artifacts?: string;
  } = {},
) {
  const out = path.join(work, `${prefix}-${(shard ?? "all").replace("/", "of")}-out`);
  const args = importArgs(
    opts.stdin ? "-" : (opts.input ?? bundle),
    `${plain.host}/${prefix}`,
    out,
    opts.artifacts ?? `${needEnv("AIRGAP_TEST_DAV_URL")}/${prefix}/`,
    [...(shard ? ["--shard", shard] : []), "--plain-http", ...(opts.extra ?? [])],
  );
  return {
    out,
    run: runCli(args, {
      env: { ...davEnv(), ...opts.env },
      ...(opts.stdin ? { input: createReadStream(opts.stdin) } : {}),
    }),
  };
}

/**
 * Whether a root is a shard's: the item's own root, or a cosign tag of an item of that shard (same
 * repository).
 */
function isMine(items: string[], source: string): boolean {
  if (items.includes(source)) return true;
  const m = /^(.*):sha256-[0-9a-f]{64}\.(sig|att|sbom)$/.exec(source);
  return m !== null && items.some((n) => n.startsWith(`${m[1]}:`));
}

/** host/repo:tag or host/repo@digest → repository and reference below the host. */
function split(target: string): { repo: string; ref: string } {
  const noHost = target.slice(target.indexOf("/") + 1);
  const at = noHost.indexOf("@");
  if (at >= 0) return { repo: noHost.slice(0, at), ref: noHost.slice(at + 1) };
  const colon = noHost.lastIndexOf(":");
  return { repo: noHost.slice(0, colon), ref: noHost.slice(colon + 1) };
}

/** The target repository of a source under another prefix. */
function retarget(target: string, from: string, to: string): { repo: string; ref: string } {
  const { repo, ref } = split(target);
  expect(repo.startsWith(`${from}/`), repo).toBe(true);
  return { repo: `${to}/${repo.slice(from.length + 1)}`, ref };
}

/**
 * Under `prefix` of the plain registry, every root the reference import pushed has the same digest,
 * the same blobs (each present), and every repository the same tags.
 */
async function expectSameAsReference(prefix: string): Promise<void> {
  const repos = new Set<string>();
  for (const img of reference.images) {
    const there = split(img.target);
    const here = retarget(img.target, referencePrefix, prefix);
    repos.add(there.repo);
    expect(await manifestDigest(plain, here.repo, here.ref), img.source).toBe(img.digest);
    expect(await manifestDigest(tls, there.repo, there.ref), img.source).toBe(img.digest);
    const blobs = await listBlobs(plain, here.repo, img.digest);
    expect(blobs, img.source).toEqual(await listBlobs(tls, there.repo, img.digest));
    for (const b of blobs) expect(await blobExists(plain, here.repo, b), `${img.source} ${b}`).toBe(true);
  }
  for (const repo of repos) {
    const here = `${prefix}/${repo.slice(referencePrefix.length + 1)}`;
    expect(await listTags(plain, here), repo).toEqual(await listTags(tls, repo));
  }
}

/** Every file below a folder, path → content. */
function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(path.relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-shard-"));
  keys = await generateKey(work, "cosign");
  // a: two tags in one repository sharing a layer; b shares it across repositories; c is signed
  const a1 = await pushImage(plain, `${ns}/a`, "1", { layerSizes: [3_000_000, 1_000_000] });
  await pushImage(plain, `${ns}/a`, "2", { layerSizes: [2_000_000], sharedLayers: [a1.layers[0]!] });
  await pushImage(plain, `${ns}/b`, "1", { layerSizes: [1_500_000], sharedLayers: [a1.layers[0]!] });
  const c = await pushImage(plain, `${ns}/c`, "1", { layerSizes: [4_000_000] });
  await pushCosignSignature(plain, `${ns}/c`, c.digest);
  await pushImage(plain, `${ns}/d`, "1", { layerSizes: [500_000, 500_000, 500_000] });
  await pushImage(plain, `${ns}/e`, "1", { layerSizes: [2_500_000] });
  const httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), ns);
  await mkdir(httpRoot, { recursive: true });
  for (const name of ["tool", "notes.txt"]) {
    files[name] = randomBytes(name === "tool" ? 300_000 : 1000);
    await writeFile(path.join(httpRoot, name), files[name]!);
  }
  const config = path.join(work, "shard.config.yaml");
  // listed in an order unlike any the partition uses
  await writeFile(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: shard, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: ${plain.host}
    plainHTTP: true
images:
${["e:1", "a:2", "c:1", "b:1", "a:1", "d:1"].map((r) => `  - ref: ${plain.host}/${ns}/${r}`).join("\n")}
files:
${Object.entries(files)
  .map(
    ([name, bytes]) => `  - name: ${name}
    url: ${needEnv("AIRGAP_TEST_HTTP_URL")}/${ns}/${name}
    sha256: ${sha256(bytes)}`,
  )
  .join("\n")}
`,
  );
  const cache = path.join(work, "cache");
  bundle = path.join(work, "bundle");
  tarBundle = path.join(work, "bundle.tar");
  for (const out of [bundle, tarBundle]) {
    const r = await runCli(
      ["bundle", "create", "-c", config, "-o", out, "--cache", cache, "--key", keys.key],
      {
        env: { COSIGN_PASSWORD: PASSWORD },
      },
    );
    expect(r.code, r.stderr).toBe(0);
  }
  itemNames = (
    JSON.parse(readFileSync(path.join(bundle, "bundle.json"), "utf8")) as { items: { name: string }[] }
  ).items
    .map((i) => i.name)
    .sort();
  expect(itemNames).toHaveLength(8);

  // the reference: one unsharded import into the TLS registry
  referencePrefix = uniqueRepo("ref");
  const env = isolatedEnv(work);
  const r = await runCli(
    importArgs(
      bundle,
      `${tls.host}/${referencePrefix}`,
      path.join(work, "reference-out"),
      `${needEnv("AIRGAP_TEST_DAV_URL")}/${referencePrefix}/`,
      ["--ca-file", needEnv("AIRGAP_TEST_CA")],
    ),
    { env: { ...env, ...davEnv() } },
  );
  reference = parsed(r, "unsharded import");
  expect(reference.shard).toBeUndefined();
  // the signature tag of c is a root of its own
  expect(reference.images.some((i) => /:sha256-[0-9a-f]{64}\.sig$/.test(i.source))).toBe(true);
}, 240_000);

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("three shards at once into one registry", () => {
  let prefix: string;
  let outs: string[];

  beforeAll(async () => {
    prefix = uniqueRepo("sharded");
    // shard 2 learns its index the way a pod of an Indexed Job does
    const runs = [
      runShard(prefix, "0/3"),
      runShard(prefix, "1/3"),
      runShard(prefix, "auto/3", { env: { JOB_COMPLETION_INDEX: "2" } }),
    ];
    outs = runs.map((r) => r.out);
    shards = (await Promise.all(runs.map((r) => r.run))).map((r, i) => parsed(r, `shard ${i}/3`));
  }, 240_000);

  it("give every digest, tag and blob the unsharded import gives", async () => {
    await expectSameAsReference(prefix);
  });

  it("push each item from exactly one shard, and each names its shard and items", () => {
    expect(shards.map((s) => [s.shard?.index, s.shard?.count])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    const all = shards.flatMap((s) => s.shard!.items);
    expect([...all].sort()).toEqual(itemNames);
    for (const s of shards) expect(s.shard!.items.length).toBeGreaterThan(0);
    // the fixture makes shards share blobs: a:1 and a:2 share a layer in one repository
    const shardOf = (ref: string) =>
      shards.findIndex((s) => s.shard!.items.includes(`${plain.host}/${ns}/${ref}`));
    expect(shardOf("a:1")).not.toBe(shardOf("a:2"));
    // every root (cosign tags included) is its shard's alone
    for (const img of reference.images) {
      expect(
        shards.filter((s) => isMine(s.shard!.items, img.source)),
        img.source,
      ).toHaveLength(1);
    }
    // every manifest the unsharded import pushed was pushed once, by one of them
    expect(shards.reduce((n, s) => n + s.stats.manifestsPushed, 0)).toBe(reference.stats.manifestsPushed);
    // and each file was uploaded to the artifact repository by the shard that owns it
    for (const f of reference.files) {
      const uploadedBy = shards.filter((s) =>
        s.files.some((g) => g.name === f.name && g.platform === f.platform && g.uploaded),
      );
      expect(uploadedBy, f.name).toHaveLength(1);
      const owner = uploadedBy[0]!.shard!.items.find((n) => n.includes(`/files/${f.name}:`));
      expect(owner, `${f.name} is uploaded by the shard whose item it is`).toBeDefined();
    }
  });

  it("publish every file to the artifact repository, listed with its URL by every shard", async () => {
    for (const s of shards) {
      expect(s.files.map((f) => f.name).sort()).toEqual(Object.keys(files).sort());
      for (const f of s.files) {
        const res = await request(f.url!, {
          headers: {
            authorization: `Basic ${Buffer.from(`${needEnv("AIRGAP_TEST_DAV_USER")}:${needEnv("AIRGAP_TEST_DAV_PASSWORD")}`).toString("base64")}`,
          },
        });
        const body = Buffer.from(await res.body.arrayBuffer());
        expect(res.statusCode, f.url).toBe(200);
        expect(sha256(body)).toBe(sha256(files[f.name]!));
      }
    }
  });

  it("each writes the same cluster configuration, for every item", () => {
    const first = tree(outs[0]!);
    expect(first.has("images.json")).toBe(true);
    for (const out of outs.slice(1)) expect(tree(out)).toEqual(first);
    const listed = (JSON.parse(first.get("images.json")!) as { source: string }[])
      .map((i) => i.source)
      .sort();
    const expected = (
      JSON.parse(readFileSync(path.join(work, "reference-out", "images.json"), "utf8")) as {
        source: string;
      }[]
    )
      .map((i) => i.source)
      .sort();
    expect(listed).toEqual(expected);
    expect(first.get("files.json")).toBeDefined();
  });
});

describe("a shard killed while pushing", () => {
  it("completes when run again, and the three give what the unsharded import gives", async () => {
    const prefix = uniqueRepo("killed");
    // the shard with the most bytes; stop it once one of its layers landed
    const victim = shards.reduce((a, b) => (b.shard!.cost > a.shard!.cost ? b : a)).shard!.index;
    const layersOf = async () => {
      const out: { repo: string; digest: string }[] = [];
      for (const img of reference.images.filter((i) => shards[victim]!.shard!.items.includes(i.source))) {
        const here = retarget(img.target, referencePrefix, prefix);
        const blobs = await listBlobs(tls, split(img.target).repo, img.digest);
        for (const digest of blobs) out.push({ repo: here.repo, digest });
      }
      return out;
    };
    const victimBlobs = await layersOf();
    expect(victimBlobs.length).toBeGreaterThan(1);
    let landed = 0;
    let asking = false;
    const stop = runAndStop(
      runShardArgs(prefix, `${victim}/3`),
      "SIGKILL",
      () => {
        if (!asking) {
          asking = true;
          void Promise.all(victimBlobs.map((b) => blobExists(plain, b.repo, b.digest)))
            .then((found) => {
              landed = found.filter(Boolean).length;
            })
            .finally(() => {
              asking = false;
            });
        }
        return landed >= 1;
      },
      davEnv(),
    );
    const others = [0, 1, 2].filter((i) => i !== victim).map((i) => runShard(prefix, `${i}/3`).run);
    const stopped = await stop;
    expect(stopped.stopped, `the shard ended before it was killed: ${stopped.result.stderr}`).toBe(true);
    expect(landed).toBeLessThan(victimBlobs.length);
    for (const r of await Promise.all(others)) parsed(r, "the other shards");
    const rerun = parsed(await runShard(prefix, `${victim}/3`).run, "rerun of the killed shard");
    expect(rerun.shard!.items).toEqual(shards[victim]!.shard!.items);
    await expectSameAsReference(prefix);
  });
});

function runShardArgs(prefix: string, shard: string): string[] {
  return importArgs(
    bundle,
    `${plain.host}/${prefix}`,
    path.join(work, `${prefix}-killed-out`),
    `${needEnv("AIRGAP_TEST_DAV_URL")}/${prefix}/`,
    ["--shard", shard, "--plain-http"],
  );
}

describe("shards from other inputs and modes", () => {
  it("a shard reading a tar from a pipe pushes only its items; the others complete the import, one with --verify-all, into an S3 artifact repository", async () => {
    const prefix = uniqueRepo("piped");
    const s3 = new S3Client({
      endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
      forcePathStyle: true,
      region: "us-east-1",
      requestChecksumCalculation: "WHEN_REQUIRED",
    });
    await s3.send(new CreateBucketCommand({ Bucket: prefix }));
    const s3Opts = {
      artifacts: `s3://${prefix}/scanner`,
      env: { AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT") },
    };
    const one = parsed(
      await runShard(prefix, "1/3", { stdin: tarBundle, ...s3Opts }).run,
      "shard 1/3 from a pipe",
    );
    expect(one.shard!.items).toEqual(shards[1]!.shard!.items);
    for (const img of reference.images) {
      const here = retarget(img.target, referencePrefix, prefix);
      const pushed = await manifestDigest(plain, here.repo, here.ref);
      if (isMine(one.shard!.items, img.source)) expect(pushed, img.source).toBe(img.digest);
      else expect(pushed, `${img.source} is not shard 1's`).toBeUndefined();
    }
    const rest = await Promise.all([
      runShard(prefix, "0/3", { extra: ["--verify-all"], ...s3Opts }).run,
      runShard(prefix, "2/3", { input: tarBundle, ...s3Opts }).run,
    ]);
    const all = [one, ...rest.map((r) => parsed(r, "shards 0 and 2"))];
    await expectSameAsReference(prefix);
    // each file went up to S3 once, from the shard that owns it, and reads back intact
    for (const name of Object.keys(files)) {
      const uploads = all.filter((s) => s.files.some((f) => f.name === name && f.uploaded));
      expect(uploads, name).toHaveLength(1);
      expect(uploads[0]!.shard!.items.some((n) => n.includes(`/files/${name}:`))).toBe(true);
      const res = await s3.send(
        new GetObjectCommand({ Bucket: prefix, Key: `scanner/files/${name}/any/${name}` }),
      );
      expect(sha256(Buffer.from(await res.Body!.transformToByteArray()))).toBe(sha256(files[name]!));
    }
    s3.destroy();
  });

  it("--shard 0/1 is the unsharded import; --import-job-shards N enables the sharded Job in the overlay", async () => {
    const prefix = uniqueRepo("one");
    const run = runShard(prefix, "0/1", { extra: ["--import-job-shards", "5"] });
    const r = parsed(await run.run, "--shard 0/1");
    expect([...r.shard!.items].sort()).toEqual(itemNames);
    expect(r.images).toHaveLength(reference.images.length);
    expect(r.stats.manifestsPushed).toBe(reference.stats.manifestsPushed);
    await expectSameAsReference(prefix);
    const overlay = tree(path.join(run.out, "manifests"));
    expect(overlay.get("kustomization.yaml")).toMatch(/^ {2}- components\/import-job-sharded$/m);
    expect(overlay.get("patches/import-job-shards.yaml")).toMatch(/completions: 5\n/);
    expect(overlay.get("patches/import-job-shards-configmap.yaml")).toMatch(/SHARDS: "5"/);
  });

  it("refuses auto/N without JOB_COMPLETION_INDEX, or with one not below N, before reading the bundle (exit 2)", async () => {
    const unset = await runShard(uniqueRepo("bad"), "auto/3", { env: { JOB_COMPLETION_INDEX: undefined } })
      .run;
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/JOB_COMPLETION_INDEX is not set/);
    const high = await runShard(uniqueRepo("bad"), "auto/3", { env: { JOB_COMPLETION_INDEX: "3" } }).run;
    expect(high.code).toBe(2);
    expect(high.stderr).toMatch(/JOB_COMPLETION_INDEX=3 is not below 3/);
    const bad = await runShard(uniqueRepo("bad"), "3/3").run;
    expect(bad.code).toBe(2);
  });
});

describe("two shards of a bundle with a profile, a chart and gems, into one artifact repository", () => {
  const davAuth = () =>
    `Basic ${Buffer.from(`${needEnv("AIRGAP_TEST_DAV_USER")}:${needEnv("AIRGAP_TEST_DAV_PASSWORD")}`).toString("base64")}`;
  /** What an artifact repository serves at `key`, with the repository's own URL written as BASE. */
  async function indexAt(base: string, key: string): Promise<string> {
    const res = await request(`${base}${key}`, { headers: { authorization: davAuth() } });
    const text = await res.body.text();
    expect(res.statusCode, `${base}${key}`).toBe(200);
    return text.split(base).join("BASE/");
  }
  const INDEXES = [
    "profiles/index.json",
    "charts/index.yaml",
    "gems/versions",
    "gems/names",
    "gems/info/fixture-mid",
    "gems/info/fixture-leaf",
    "gems/airgap-gems.json",
    "charts/airgap-charts.json",
  ];
  const uploadedKeys = (r: ImportJson) => [
    ...(r.profiles ?? []).filter((p) => p.uploaded).map((p) => `profile ${p.name}`),
    ...(r.charts ?? []).filter((c) => c.uploaded).map((c) => `chart ${c.name}`),
    ...(r.gems ?? []).filter((g) => g.uploaded).map((g) => `gem ${g.name}`),
  ];

  let bundleTar: string;
  let names: string[];
  let httpDir: string;

  beforeAll(async () => {
    requireRuby();
    const root = path.join(work, "artifacts-bundle");
    await writeTree(path.join(root, "profiles", "scanner"), {
      "inspec.yml": "name: scanner\nversion: 1.2.3\n",
      "controls/s.rb": 'control "s-1" do\n  describe true do\n    it { should eq true }\n  end\nend\n',
    });
    await writeTree(path.join(root, "charts", "scanner"), {
      "Chart.yaml": minimalChart("scanner", "0.3.0"),
      "values.yaml": "replicas: 1\n",
      "templates/pod.yaml": "apiVersion: v1\nkind: Pod\n",
    });
    const builtDir = path.join(root, "built");
    await mkdir(builtDir, { recursive: true });
    const gemFiles: string[] = [];
    for (const g of [
      { name: "fixture-mid", version: "1.2.0", runtime: { "fixture-leaf": [">= 0.5"] } },
      { name: "fixture-leaf", version: "0.9.0" },
    ]) {
      gemFiles.push(await buildGem(path.join(root, "gem-src"), builtDir, g));
    }
    httpDir = `${ns}-gems`;
    await writeGemSource(
      path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), httpDir),
      gemSourceFiles(await describeGems(gemFiles)),
    );
    const config = path.join(root, "bundle.config.yaml");
    await writeFile(
      config,
      `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: shard-artifacts, version: 1.0.0 }
profiles:
  - path: profiles/scanner
charts:
  - path: charts/scanner
gems:
  - name: fixture-mid
    version: "1.2.0"
    source: ${needEnv("AIRGAP_TEST_HTTP_URL")}/${httpDir}
`,
    );
    // one bundle, read as a file by some runs and from a pipe by another
    bundleTar = path.join(root, "bundle.tar");
    const r = await runCli(
      [
        "bundle",
        "create",
        "-c",
        config,
        "-o",
        bundleTar,
        "--cache",
        path.join(root, "cache"),
        "--key",
        keys.key,
      ],
      { env: { COSIGN_PASSWORD: PASSWORD } },
    );
    expect(r.code, r.stderr).toBe(0);
    const inspected = await runCli(["bundle", "inspect", bundleTar, "--json"]);
    expect(inspected.code, inspected.stderr).toBe(0);
    names = (JSON.parse(inspected.stdout) as { items: { name: string }[] }).items.map((i) => i.name).sort();
    expect(names).toHaveLength(4);
  }, 240_000);

  afterAll(async () => {
    if (httpDir)
      await rm(path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), httpDir), { recursive: true, force: true });
  });

  it("upload each artifact once, and leave the indexes an unsharded import writes, naming every item", async () => {
    const unshardedPrefix = uniqueRepo("art-all");
    const unsharded = parsed(
      await runShard(unshardedPrefix, undefined, { input: bundleTar }).run,
      "unsharded",
    );
    expect(uploadedKeys(unsharded).sort()).toEqual([
      "chart scanner",
      "gem fixture-leaf",
      "gem fixture-mid",
      "profile scanner",
    ]);

    const prefix = uniqueRepo("art-sharded");
    // one reads the file, the other the same tar from a pipe (publishing what it reads back from the registry)
    const runs = [
      runShard(prefix, "0/2", { input: bundleTar }),
      runShard(prefix, "1/2", { stdin: bundleTar }),
    ];
    const both = (await Promise.all(runs.map((r) => r.run))).map((r, i) => parsed(r, `shard ${i}/2`));
    // both write the same cluster configuration, which lists every profile, chart and gem
    const config = tree(runs[0]!.out);
    expect(tree(runs[1]!.out)).toEqual(config);
    for (const [file, count] of [
      ["profiles.json", 1],
      ["charts.json", 1],
      ["gems.json", 2],
    ] as const) {
      expect(config.has(file), file).toBe(true);
      expect(JSON.parse(config.get(file)!) as unknown[], file).toHaveLength(count);
    }
    expect([...both.flatMap((s) => s.shard!.items)].sort()).toEqual(names);
    for (const s of both) expect(s.shard!.items.length, "each shard owns a part").toBeGreaterThan(0);
    // each artifact went up once, from the shard that owns it
    const uploads = both.flatMap((s) => uploadedKeys(s).map((k) => ({ k, items: s.shard!.items })));
    expect(uploads.map((u) => u.k).sort()).toEqual(uploadedKeys(unsharded).sort());
    for (const u of uploads) {
      const [kind, name] = u.k.split(" ") as [string, string];
      expect(
        u.items.some((n) => n.includes(`/${kind}s/${name}:`)),
        `${u.k} is uploaded by the shard whose item it is`,
      ).toBe(true);
    }
    // every shard lists every artifact with its URL, and every item's OCI artifact landed once
    for (const s of both) {
      expect((s.profiles ?? []).map((p) => p.url)).toEqual(
        (unsharded.profiles ?? []).map((p) => p.url!.replace(unshardedPrefix, prefix)),
      );
      expect((s.gems ?? []).map((g) => g.name).sort()).toEqual(["fixture-leaf", "fixture-mid"]);
      expect((s.charts ?? []).map((c) => c.name)).toEqual(["scanner"]);
    }
    expect(both.reduce((n, s) => n + s.stats.manifestsPushed, 0)).toBe(unsharded.stats.manifestsPushed);

    const dav = needEnv("AIRGAP_TEST_DAV_URL");
    for (const key of INDEXES) {
      const sharded = await indexAt(`${dav}/${prefix}/`, key);
      expect(sharded, key).toBe(await indexAt(`${dav}/${unshardedPrefix}/`, key));
    }
    const profilesIndex = JSON.parse(await indexAt(`${dav}/${prefix}/`, "profiles/index.json")) as {
      profiles: { name: string; version: string }[];
    };
    expect(profilesIndex.profiles.map((p) => `${p.name} ${p.version}`)).toEqual(["scanner 1.2.3"]);
    const helmIndex = await indexAt(`${dav}/${prefix}/`, "charts/index.yaml");
    expect(helmIndex).toMatch(/^ {2}scanner:$/m);
    expect(helmIndex).toContain("scanner-0.3.0.tgz");
    const versions = await indexAt(`${dav}/${prefix}/`, "gems/versions");
    expect(versions).toMatch(/^fixture-mid 1\.2\.0 /m);
    expect(versions).toMatch(/^fixture-leaf 0\.9\.0 /m);
    // every artifact the indexes name is there, byte for byte what the unsharded import holds
    for (const key of [
      "profiles/scanner/1.2.3/scanner-1.2.3.tar.gz",
      "charts/scanner-0.3.0.tgz",
      "gems/gems/fixture-mid-1.2.0.gem",
      "gems/gems/fixture-leaf-0.9.0.gem",
    ]) {
      const got = await request(`${dav}/${prefix}/${key}`, { headers: { authorization: davAuth() } });
      const body = Buffer.from(await got.body.arrayBuffer());
      expect(got.statusCode, key).toBe(200);
      const want = await request(`${dav}/${unshardedPrefix}/${key}`, {
        headers: { authorization: davAuth() },
      });
      expect(sha256(body), key).toBe(sha256(Buffer.from(await want.body.arrayBuffer())));
    }
  }, 240_000);
});
