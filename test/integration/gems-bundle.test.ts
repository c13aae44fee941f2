/**
 * Gems end to end through the CLI: fixture gems built with Debian's `gem build` and served as a
 * compact index by the static nginx server; `bundle create` resolves and stores each .gem with its
 * .gemspec.rz as an ORAS-style artifact; the bundle verifies and inspects; `bundle import` pushes the
 * artifacts and publishes a static gem source to the WebDAV raw repository, from which the real
 * `gem install` installs, and to S3, where every object is read back and hashed.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gemSourceFiles } from "../../src/sources/gems/index.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, getManifest, plainTarget } from "../helpers/fixtures.js";
import {
  buildGem,
  describeGems,
  type FixtureGem,
  gemInstall,
  requireRuby,
  writeGemSource,
} from "../helpers/gems.js";
import { generateKey, PASSWORD } from "./import-helpers.js";

const uid = `gb-${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const registry = plainTarget().host;

const FIXTURES: FixtureGem[] = [
  { name: "fixture-mid", version: "1.0.0", runtime: { "fixture-leaf": [">= 0.5", "< 2"] } },
  { name: "fixture-mid", version: "1.2.0", runtime: { "fixture-leaf": [">= 0.5", "< 2"] } },
  { name: "fixture-leaf", version: "0.9.0" },
  { name: "fixture-leaf", version: "2.0.0" },
];

let work: string;
let bundleDir: string;
let keys: { key: string; pub: string };
const built = new Map<string, Buffer>();

interface GemItemJson {
  kind: string;
  name: string;
  digest: string;
  gem: {
    name: string;
    version: string;
    platform: string;
    sha256: string;
    gemspec: { sha256: string };
    dependencies: { name: string; requirement: string }[];
    requiredBy: string[];
  };
}

beforeAll(async () => {
  requireRuby();
  work = await mkdtemp(path.join(tmpdir(), "airgap-gems-bundle-"));
  keys = await generateKey(work, "cosign");
  const builtDir = path.join(work, "built");
  await mkdir(builtDir, { recursive: true });
  const files: string[] = [];
  for (const g of FIXTURES) {
    const file = await buildGem(path.join(work, "src"), builtDir, g);
    files.push(file);
    built.set(path.basename(file), await readFile(file));
  }
  const upstreamRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid, "upstream");
  await writeGemSource(upstreamRoot, gemSourceFiles(await describeGems(files)));
  const config = path.join(work, "bundle.config.yaml");
  await writeFile(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: gems, version: 1.0.0 }
gems:
  - name: fixture-mid
    version: "~> 1.0"
    source: ${needEnv("AIRGAP_TEST_HTTP_URL")}/${uid}/upstream
`,
  );
  bundleDir = path.join(work, "bundle");
  const r = await runCli(
    [
      "bundle",
      "create",
      "-c",
      config,
      "-o",
      bundleDir,
      "--cache",
      path.join(work, "cache"),
      "--key",
      keys.key,
    ],
    { env: { COSIGN_PASSWORD: PASSWORD } },
  );
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await closeFixtures();
  if (work) await rm(work, { recursive: true, force: true });
  await rm(path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), uid), { recursive: true, force: true });
});

describe("gems in a bundle", () => {
  it("each resolved gem is an artifact localhost/gems/NAME:VERSION holding the .gem and .gemspec.rz", async () => {
    const inv = JSON.parse(await readFile(path.join(bundleDir, "bundle.json"), "utf8")) as {
      items: GemItemJson[];
    };
    const gems = inv.items.filter((i) => i.kind === "gem");
    expect(gems.map((g) => g.name).sort()).toEqual([
      "localhost/gems/fixture-leaf:0.9.0",
      "localhost/gems/fixture-mid:1.2.0",
    ]);
    const leaf = gems.find((g) => g.gem.name === "fixture-leaf")!;
    expect(leaf.gem.requiredBy).toEqual(["fixture-mid"]);
    expect(leaf.gem.platform).toBe("ruby");
    const mid = gems.find((g) => g.gem.name === "fixture-mid")!;
    expect(mid.gem.dependencies).toEqual([{ name: "fixture-leaf", requirement: "< 2, >= 0.5" }]);
    for (const g of gems) {
      expect(g.gem.sha256).toBe(sha256(built.get(`${g.gem.name}-${g.gem.version}.gem`)!));
      const manifest = JSON.parse(
        await readFile(path.join(bundleDir, "blobs", "sha256", g.digest.slice(7)), "utf8"),
      ) as { artifactType: string; layers: { digest: string; annotations: Record<string, string> }[] };
      expect(manifest.artifactType).toBe("application/vnd.rubygems.gem.v1");
      expect(manifest.layers.map((l) => l.annotations["org.opencontainers.image.title"])).toEqual([
        `${g.gem.name}-${g.gem.version}.gem`,
        `${g.gem.name}-${g.gem.version}.gemspec.rz`,
      ]);
      expect(manifest.layers.map((l) => l.digest)).toEqual([
        `sha256:${g.gem.sha256}`,
        `sha256:${g.gem.gemspec.sha256}`,
      ]);
    }
    const v = await runCli(["bundle", "verify", bundleDir, "--key", keys.pub]);
    expect(v.code, v.stderr).toBe(0);
    const i = await runCli(["bundle", "inspect", bundleDir, "--json"]);
    const rows = (JSON.parse(i.stdout) as { items: { kind: string; details: { version: string } }[] }).items;
    expect(
      rows
        .filter((r) => r.kind === "gem")
        .map((r) => r.details.version)
        .sort(),
    ).toEqual(["0.9.0", "1.2.0"]);
  });

  it("diff shows a gem at another version as one change", async () => {
    const config = path.join(work, "older.config.yaml");
    await writeFile(
      config,
      (await readFile(path.join(work, "bundle.config.yaml"), "utf8")).replace('"~> 1.0"', '"1.0.0"'),
    );
    const older = path.join(work, "older");
    const c = await runCli([
      "bundle",
      "create",
      "-c",
      config,
      "-o",
      older,
      "--cache",
      path.join(work, "cache"),
    ]);
    expect(c.code, c.stderr).toBe(0);
    const d = await runCli(["bundle", "diff", older, bundleDir, "--json"]);
    expect(d.code, d.stderr).toBe(0);
    const diff = JSON.parse(d.stdout) as {
      added: unknown[];
      removed: unknown[];
      changed: { kind: string; name: string; oldVersion: string; newVersion: string }[];
      unchanged: string[];
    };
    expect(diff.added).toEqual([]);
    expect(diff.removed).toEqual([]);
    expect(diff.changed).toEqual([
      expect.objectContaining({
        kind: "gem",
        name: "localhost/gems/fixture-mid",
        oldVersion: "1.0.0",
        newVersion: "1.2.0",
      }),
    ]);
    expect(diff.unchanged).toEqual(["localhost/gems/fixture-leaf:0.9.0"]);
    const text = await runCli(["bundle", "diff", older, bundleDir]);
    expect(text.stdout).toContain("~ gem localhost/gems/fixture-mid 1.0.0 → 1.2.0");
  });

  it("import publishes a gem source that gem install takes, and the same files to S3", async () => {
    const user = needEnv("AIRGAP_TEST_DAV_USER");
    const password = needEnv("AIRGAP_TEST_DAV_PASSWORD");
    const dav = `${needEnv("AIRGAP_TEST_DAV_URL")}/${uid}/`;
    const out = path.join(work, "out");
    const r = await runCli(
      [
        "bundle",
        "import",
        bundleDir,
        "--registry",
        `${registry}/${uid}`,
        "--plain-http",
        "--key",
        keys.pub,
        "--artifacts",
        dav,
        "--out",
        out,
        "--json",
      ],
      { env: { AIRGAP_ARTIFACTS_USER: user, AIRGAP_ARTIFACTS_PASSWORD: password } },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      gems: {
        name: string;
        version: string;
        sha256: string;
        url: string;
        source: string;
        artifact: string;
      }[];
    };
    expect(result.gems).toHaveLength(2);
    expect(result.gems[0]!.source).toBe(`${dav}gems`);
    const listed = JSON.parse(await readFile(path.join(out, "gems.json"), "utf8")) as { name: string }[];
    expect(listed.map((g) => g.name).sort()).toEqual(["fixture-leaf", "fixture-mid"]);
    // the artifact in the registry
    const pushed = await getManifest(plainTarget(), `${uid}/gems/fixture-mid`, "1.2.0");
    expect(result.gems.find((g) => g.name === "fixture-mid")!.artifact).toBe(
      `${registry}/${uid}/gems/fixture-mid@${pushed.digest}`,
    );
    // the real gem install, from nothing but the published source
    const source = new URL(result.gems[0]!.source);
    source.username = user;
    source.password = password;
    const installed = gemInstall(source.toString(), path.join(work, "gem-home"), "fixture-mid");
    expect(installed.installed).toEqual(["fixture-leaf-0.9.0", "fixture-mid-1.2.0"]);

    // a second bundle with another version joins the same source; the first one's gems stay installable
    const again = await runCli(
      [
        "bundle",
        "import",
        path.join(work, "older"),
        "--registry",
        `${registry}/${uid}`,
        "--plain-http",
      ].concat(["--artifacts", dav, "--out", path.join(work, "out-older"), "--json"]),
      { env: { AIRGAP_ARTIFACTS_USER: user, AIRGAP_ARTIFACTS_PASSWORD: password } },
    );
    expect(again.code, again.stderr).toBe(0);
    const older = gemInstall(source.toString(), path.join(work, "gem-home-old"), "fixture-mid", {
      version: "1.0.0",
    });
    expect(older.installed).toEqual(["fixture-leaf-0.9.0", "fixture-mid-1.0.0"]);
    const newer = gemInstall(source.toString(), path.join(work, "gem-home-new"), "fixture-mid");
    expect(newer.installed).toEqual(["fixture-leaf-0.9.0", "fixture-mid-1.2.0"]);

    // S3: the .gem files read back with their sha256
    const bucket = uid
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 40);
    const s3 = new S3Client({
      endpoint: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
      forcePathStyle: true,
      region: "us-east-1",
      requestChecksumCalculation: "WHEN_REQUIRED",
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const r3 = await runCli(
      [
        "bundle",
        "import",
        bundleDir,
        "--registry",
        `${registry}/${uid}`,
        "--plain-http",
        "--artifacts",
        `s3://${bucket}/site`,
        "--out",
        path.join(work, "out-s3"),
        "--json",
      ],
      { env: { AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT") } },
    );
    expect(r3.code, r3.stderr).toBe(0);
    for (const g of (JSON.parse(r3.stdout) as { gems: { name: string; version: string; sha256: string }[] })
      .gems) {
      const obj = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: `site/gems/gems/${g.name}-${g.version}.gem` }),
      );
      expect(sha256(Buffer.from(await obj.Body!.transformToByteArray()))).toBe(g.sha256);
    }
    const versions = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "site/gems/versions" }));
    expect(await versions.Body!.transformToString()).toContain("fixture-mid 1.2.0");
  });
});
