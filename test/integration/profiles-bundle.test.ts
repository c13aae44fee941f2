/**
 * Profiles end to end through the CLI: `bundle create` resolves a profile whose depends mix git, url
 * and path, vendors it and stores it in the bundle; `bundle import` pushes it as an OCI artifact and
 * publishes it to S3 (Ceph RGW) and to an HTTP raw repository; a re-import uploads nothing.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, getBlob, getManifest, plainTarget } from "../helpers/fixtures.js";
import { makeGitRepo } from "../helpers/git.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
const control = (id: string) =>
  `control "${id}" do\n  describe true do\n    it { should eq true }\n  end\nend\n`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
  }
}

let work: string;
let configFile: string;
let bundleDir: string;
const registry = plainTarget().host;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-profile-bundle-"));
  // git dependency
  const gitDep = await makeGitRepo(`helpers-${uid}`, [
    {
      files: { "inspec.yml": "name: helpers\nversion: 0.3.0\n", "controls/h.rb": control("h-1") },
      tags: ["v0.3.0"],
    },
  ]);
  // url dependency, a tarball on the static server
  const httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `pb-${uid}`);
  await writeTree(path.join(work, "lib-src", "lib-1.0.0"), {
    "inspec.yml": "name: lib\nversion: 1.0.0\n",
    "controls/l.rb": control("l-1"),
  });
  await mkdir(httpRoot, { recursive: true });
  execFileSync("tar", [
    "-czf",
    path.join(httpRoot, "lib.tar.gz"),
    "-C",
    path.join(work, "lib-src"),
    "lib-1.0.0",
  ]);
  const libSha = sha256(await readFile(path.join(httpRoot, "lib.tar.gz")));
  // the top profile with a path dependency beside it
  await writeTree(path.join(work, "profiles", "local-dep"), {
    "inspec.yml": "name: local-dep\nversion: 2.0.0\n",
    "controls/d.rb": control("d-1"),
  });
  await writeTree(path.join(work, "profiles", "scanner"), {
    "inspec.yml": [
      "name: scanner",
      "version: 1.2.3",
      "depends:",
      "  - name: local-dep",
      "    path: ../local-dep",
      "  - name: helpers",
      `    git: ${gitDep.url}`,
      "    tag: v0.3.0",
      "  - name: lib",
      `    url: ${needEnv("AIRGAP_TEST_HTTP_URL")}/pb-${uid}/lib.tar.gz`,
      `    sha256: ${libSha}`,
      "",
    ].join("\n"),
    "controls/s.rb": control("s-1"),
  });
  configFile = path.join(work, "bundle.config.yaml");
  await writeFile(
    configFile,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: profiles, version: 1.0.0 }
profiles:
  - path: profiles/scanner
`,
  );
  bundleDir = path.join(work, "bundle");
  const r = await runCli([
    "bundle",
    "create",
    "-c",
    configFile,
    "-o",
    bundleDir,
    "--cache",
    path.join(work, "cache"),
  ]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await closeFixtures();
});

interface ProfileItemJson {
  kind: string;
  name: string;
  digest: string;
  profile: { name: string; version: string; sha256: string; file: string };
  dependencies: { name: string; version: string; dependencies: unknown[] }[];
}

describe("profiles in a bundle", () => {
  it("are vendored with inspec.lock and stored as a CINC profile artifact", async () => {
    const inventory = JSON.parse(await readFile(path.join(bundleDir, "bundle.json"), "utf8")) as {
      items: ProfileItemJson[];
    };
    const item = inventory.items.find((i) => i.kind === "profile")!;
    expect(item.name).toBe("localhost/profiles/scanner:1.2.3");
    expect(item.profile.file).toBe("scanner-1.2.3.tar.gz");
    expect(item.dependencies.map((d) => d.name).sort()).toEqual(["helpers", "lib", "local-dep"]);
    const manifest = JSON.parse(
      await readFile(path.join(bundleDir, "blobs", "sha256", item.digest.slice(7)), "utf8"),
    ) as { artifactType: string; layers: { digest: string; annotations: Record<string, string> }[] };
    expect(manifest.artifactType).toBe("application/vnd.cinc.profile.v1+tar+gzip");
    expect(manifest.layers[0]!.annotations["org.opencontainers.image.title"]).toBe("scanner-1.2.3.tar.gz");
    // the archive holds inspec.lock and vendor/ for all three dependencies
    const tgz = path.join(bundleDir, "blobs", "sha256", item.profile.sha256);
    const names = execFileSync("tar", ["-tzf", tgz], { encoding: "utf8" }).split("\n");
    expect(names).toContain("inspec.lock");
    // one vendor/<cache key>/ per dependency (a url archive keeps its top folder, as InSpec's does)
    const keys = new Set(
      names.filter((n) => /^vendor\/[^/]+\/(?:[^/]+\/)?inspec\.yml$/.test(n)).map((n) => n.split("/")[1]),
    );
    expect(keys.size).toBe(3);
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: bundleDir });
  });

  it("import pushes the profile artifact and publishes it to S3; a re-import uploads nothing", async () => {
    const bucket = `pb-${uid}`
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
    const env = { AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT") };
    const importConfig = path.join(work, "import.yaml");
    await writeFile(
      importConfig,
      `apiVersion: cinc-airgap/v1\nkind: Import\nregistries:\n  - host: "${registry}"\n    plainHTTP: true\n`,
    );
    const args = [
      "bundle",
      "import",
      bundleDir,
      "--registry",
      `${registry}/pb-${uid}`,
      "--config",
      importConfig,
    ];
    const out = path.join(work, "out");
    const r = await runCli([...args, "--artifacts", `s3://${bucket}/airgap`, "--out", out, "--json"], {
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as {
      profiles: { name: string; url: string; uploaded: boolean; sha256: string }[];
    };
    expect(result.profiles).toHaveLength(1);
    expect(result.profiles[0]!.uploaded).toBe(true);
    const obj = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: "airgap/profiles/scanner/1.2.3/scanner-1.2.3.tar.gz" }),
    );
    const body = Buffer.from(await obj.Body!.transformToByteArray());
    expect(sha256(body)).toBe(result.profiles[0]!.sha256);
    const index = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "airgap/profiles/index.json" }));
    expect(await index.Body!.transformToString()).toContain(result.profiles[0]!.sha256);
    const profilesJson = JSON.parse(await readFile(path.join(out, "profiles.json"), "utf8")) as {
      url: string;
    }[];
    expect(profilesJson[0]!.url).toContain("scanner-1.2.3.tar.gz");

    // the OCI artifact in the registry has the same archive
    const pushed = await getManifest(plainTarget(), `pb-${uid}/profiles/scanner`, "1.2.3");
    const layer = (JSON.parse(pushed.bytes.toString()) as { layers: { digest: string }[] }).layers[0]!;
    expect(sha256(await getBlob(plainTarget(), `pb-${uid}/profiles/scanner`, layer.digest))).toBe(
      result.profiles[0]!.sha256,
    );

    const again = await runCli([...args, "--artifacts", `s3://${bucket}/airgap`, "--out", out, "--json"], {
      env,
    });
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as {
      profiles: { uploaded: boolean }[];
      stats: { blobsUploaded: number };
    };
    expect(second.profiles[0]!.uploaded).toBe(false);
    expect(second.stats.blobsUploaded).toBe(0);
  });

  it("import publishes to an HTTP raw repository with Basic auth, also from a piped tar", async () => {
    const tar = path.join(work, "b.tar");
    const c = await runCli([
      "bundle",
      "create",
      "-c",
      configFile,
      "-o",
      tar,
      "--cache",
      path.join(work, "cache"),
    ]);
    expect(c.code, c.stderr).toBe(0);
    const env = {
      AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
      AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
    };
    const base = `${needEnv("AIRGAP_TEST_DAV_URL")}/pb-${uid}/`;
    const r = await runCli(
      [
        "bundle",
        "import",
        "-",
        "--registry",
        `${registry}/pbh-${uid}`,
        "--plain-http",
        "--artifacts",
        base,
        "--out",
        path.join(work, "out-http"),
        "--json",
      ],
      { env, input: await readFile(tar) },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { profiles: { url: string; sha256: string; uploaded: boolean }[] };
    expect(result.profiles[0]!.uploaded).toBe(true);
    const auth = Buffer.from(`${env.AIRGAP_ARTIFACTS_USER}:${env.AIRGAP_ARTIFACTS_PASSWORD}`).toString(
      "base64",
    );
    const res = await fetch(result.profiles[0]!.url, { headers: { authorization: `Basic ${auth}` } });
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(result.profiles[0]!.sha256);
    expect(r.stdout + r.stderr).not.toContain(env.AIRGAP_ARTIFACTS_PASSWORD);
  });
});
