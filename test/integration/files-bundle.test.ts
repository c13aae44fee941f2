/**
 * Files end to end through the CLI, from the static nginx server: one download per platform with
 * {os}/{arch} expanded, pinned by sha256 (a wrong one is refused with exit 3, a missing one needs
 * --allow-unpinned), stored as ORAS-style artifacts that verify, inspect and diff; import pushes them
 * to the registry and publishes them to S3 (Ceph RGW) and to the WebDAV raw repository, where every
 * object is read back and hashed. An incremental bundle's files are published from the registry.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, getBlob, getManifest, plainTarget } from "../helpers/fixtures.js";
import { generateKey, PASSWORD } from "./import-helpers.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const registry = plainTarget().host;

let work: string;
let httpBase: string;
let httpRoot: string;
let keys: { key: string; pub: string };
const content: { notes: Buffer } & Record<string, Buffer> = { notes: Buffer.from("release notes\n") };

interface FileItemJson {
  kind: string;
  name: string;
  digest: string;
  blobs: string[];
  file: { name: string; platform: string; url: string; sha256: string; size: number; pinned: boolean };
}

async function serve(rel: string, bytes: Buffer): Promise<string> {
  const file = path.join(httpRoot, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
  return sha256(bytes);
}

function config(name: string, files: string): string {
  return `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: ${name}, version: 1.0.0 }
platforms: [linux/amd64, linux/arm64]
files:
${files}`;
}

async function writeConfig(name: string, files: string): Promise<string> {
  const file = path.join(work, `${name}.config.yaml`);
  await writeFile(file, config(name, files));
  return file;
}

async function create(cfg: string, out: string, extra: string[] = []) {
  return await runCli(
    ["bundle", "create", "-c", cfg, "-o", out, "--cache", path.join(work, "cache"), ...extra],
    { env: { COSIGN_PASSWORD: PASSWORD } },
  );
}

async function inventoryOf(
  bundle: string,
): Promise<{ items: FileItemJson[]; since?: { omittedBlobs: string[] } }> {
  return JSON.parse(await readFile(path.join(bundle, "bundle.json"), "utf8"));
}

let goodConfig: string;
let bundleDir: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-files-"));
  httpRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `files-${uid}`);
  httpBase = `${needEnv("AIRGAP_TEST_HTTP_URL")}/files-${uid}`;
  keys = await generateKey(work, "cosign");
  for (const p of ["linux/amd64", "linux/arm64"]) content[`tool ${p}`] = randomBytes(200_000);
  const amd = await serve("v1/linux/amd64/tool", content["tool linux/amd64"]!);
  const arm = await serve("v1/linux/arm64/tool", content["tool linux/arm64"]!);
  const notes = await serve("notes.txt", content.notes);
  goodConfig = await writeConfig(
    "files",
    `  - name: tool
    url: ${httpBase}/v1/{os}/{arch}/tool
    sha256: { linux/amd64: ${amd}, linux/arm64: ${arm} }
  - name: notes.txt
    url: ${httpBase}/notes.txt
    sha256: ${notes}
`,
  );
  bundleDir = path.join(work, "bundle");
  const r = await create(goodConfig, bundleDir, ["--key", keys.key]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await closeFixtures();
});

describe("files in a bundle", () => {
  it("are stored per platform as ORAS-style artifacts under localhost/files/NAME:PLATFORM", async () => {
    const items = (await inventoryOf(bundleDir)).items.filter((i) => i.kind === "file");
    expect(items.map((i) => i.name).sort()).toEqual([
      "localhost/files/notes.txt:any",
      "localhost/files/tool:linux-amd64",
      "localhost/files/tool:linux-arm64",
    ]);
    for (const item of items) {
      const expected = item.file.name === "tool" ? content[`tool ${item.file.platform}`]! : content.notes;
      expect(item.file.sha256).toBe(sha256(expected));
      expect(item.file.pinned).toBe(true);
      expect(item.file.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
      // the layer in the bundle has the downloaded bytes
      const blob = await readFile(path.join(bundleDir, "blobs", "sha256", item.file.sha256));
      expect(blob.equals(expected)).toBe(true);
      const manifest = JSON.parse(
        await readFile(path.join(bundleDir, "blobs", "sha256", item.digest.slice(7)), "utf8"),
      ) as {
        artifactType: string;
        config: { mediaType: string };
        layers: { digest: string; annotations: Record<string, string> }[];
        annotations: Record<string, string>;
      };
      expect(manifest.artifactType).toBe("application/vnd.cinc-airgap.file.v1");
      expect(manifest.config.mediaType).toBe("application/vnd.oci.empty.v1+json");
      expect(manifest.layers).toHaveLength(1);
      expect(manifest.layers[0]!.digest).toBe(`sha256:${item.file.sha256}`);
      expect(manifest.layers[0]!.annotations["org.opencontainers.image.title"]).toBe(item.file.name);
      expect(manifest.annotations["io.cinc-airgap.file.platform"]).toBe(item.file.platform);
      expect(manifest.annotations["org.opencontainers.image.source"]).toBe(item.file.url);
    }
    const index = JSON.parse(await readFile(path.join(bundleDir, "index.json"), "utf8")) as {
      manifests: { annotations: Record<string, string> }[];
    };
    expect(index.manifests.map((m) => m.annotations["org.opencontainers.image.ref.name"]).sort()).toEqual(
      items.map((i) => i.name).sort(),
    );
  });

  it("verify checks the signed bundle; inspect lists each file with its platform", async () => {
    const v = await runCli(["bundle", "verify", bundleDir, "--key", keys.pub]);
    expect(v.code, v.stderr).toBe(0);
    const i = await runCli(["bundle", "inspect", bundleDir, "--json"]);
    expect(i.code, i.stderr).toBe(0);
    const rows = (JSON.parse(i.stdout) as { items: { kind: string; name: string; platforms: string[] }[] })
      .items;
    expect(rows.find((r) => r.name === "localhost/files/tool:linux-arm64")).toMatchObject({
      kind: "file",
      platforms: ["linux/arm64"],
    });
    const text = await runCli(["bundle", "inspect", bundleDir]);
    expect(text.stdout).toMatch(/file\s+localhost\/files\/tool:linux-amd64/);
  });

  it("--dry-run lists every download with its pin and fetches nothing", async () => {
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      goodConfig,
      "--dry-run",
      "--json",
      "--cache",
      path.join(work, "dry-cache"),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const plan = (
      JSON.parse(r.stdout) as { plan: { kind: string; name: string; digest: string; source: string }[] }
    ).plan;
    expect(
      plan
        .filter((p) => p.kind === "file")
        .map((p) => p.name)
        .sort(),
    ).toEqual([
      "localhost/files/notes.txt:any",
      "localhost/files/tool:linux-amd64",
      "localhost/files/tool:linux-arm64",
    ]);
    expect(plan.find((p) => p.name.endsWith("tool:linux-arm64"))!.source).toBe(
      `${httpBase}/v1/linux/arm64/tool`,
    );
    expect(existsSync(path.join(work, "dry-cache", "blobs", "sha256", sha256(content.notes)))).toBe(false);
  });

  it("a wrong sha256 is refused with exit 3 naming the file and platform; nothing is written", async () => {
    const cfg = await writeConfig(
      "wrong",
      `  - name: tool
    url: ${httpBase}/v1/{os}/{arch}/tool
    sha256: { linux/amd64: ${sha256(content["tool linux/amd64"]!)}, linux/arm64: "${sha256("something else")}" }
`,
    );
    const out = path.join(work, "wrong-bundle");
    const r = await create(cfg, out);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("tool");
    expect(r.stderr).toContain("linux/arm64");
    expect(existsSync(out)).toBe(false);
  });

  it("a file without a sha256 is refused unless --allow-unpinned, which records the digest seen", async () => {
    const cfg = await writeConfig(
      "unpinned",
      `  - name: tool
    url: ${httpBase}/v1/{os}/{arch}/tool
    platforms: [linux/arm64]
`,
    );
    const out = path.join(work, "unpinned-bundle");
    const refused = await create(cfg, out);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain("--allow-unpinned");
    expect(existsSync(out)).toBe(false);
    const r = await create(cfg, out, ["--allow-unpinned"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: file tool \(linux\/arm64\) has no sha256/);
    const item = (await inventoryOf(out)).items.find((i) => i.kind === "file")!;
    expect(item.file).toMatchObject({
      platform: "linux/arm64",
      sha256: sha256(content["tool linux/arm64"]!),
      pinned: false,
    });
  });

  it("a platform the file has no URL for is a usage error", async () => {
    const cfg = await writeConfig(
      "novariant",
      `  - name: tool
    url: ${httpBase}/v1/{os}/{arch}{variant}/tool
    sha256: { linux/amd64: "${"1".repeat(64)}", linux/arm64: "${"2".repeat(64)}" }
`,
    );
    const r = await create(cfg, path.join(work, "novariant-bundle"));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("file tool has no URL for platform linux/amd64");
  });

  it("diff names a file whose content changed for one platform", async () => {
    // the same URL now serves other bytes for arm64: a new pin in the config
    const newArm = randomBytes(1000);
    const armSha = await serve("v1/linux/arm64/tool", newArm);
    const cfg = await writeConfig(
      "files2",
      `  - name: tool
    url: ${httpBase}/v1/{os}/{arch}/tool
    sha256: { linux/amd64: ${sha256(content["tool linux/amd64"]!)}, linux/arm64: ${armSha} }
  - name: notes.txt
    url: ${httpBase}/notes.txt
    sha256: ${sha256(content.notes)}
`,
    );
    const out = path.join(work, "bundle2");
    const r = await create(cfg, out, ["--since", bundleDir, "--key", keys.key]);
    expect(r.code, r.stderr).toBe(0);
    const d = await runCli(["bundle", "diff", bundleDir, out, "--json"]);
    expect(d.code, d.stderr).toBe(0);
    const diff = JSON.parse(d.stdout) as { changed: { name: string; kind: string }[]; unchanged: string[] };
    expect(diff.changed.map((c) => [c.kind, c.name])).toEqual([["file", "localhost/files/tool:linux-arm64"]]);
    expect(diff.unchanged).toContain("localhost/files/notes.txt:any");
    // incremental: the unchanged files' content is left out
    const inv = await inventoryOf(out);
    expect(inv.since?.omittedBlobs).toContain(`sha256:${sha256(content.notes)}`);
    expect(existsSync(path.join(out, "blobs", "sha256", sha256(content.notes)))).toBe(false);
  });

  it("import pushes each file artifact and publishes files/NAME/PLATFORM/NAME to S3 and WebDAV", async () => {
    const bucket = `fb-${uid}`
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
    const env = {
      AWS_ENDPOINT_URL_S3: needEnv("AIRGAP_TEST_S3_ENDPOINT"),
      AIRGAP_ARTIFACTS_USER: needEnv("AIRGAP_TEST_DAV_USER"),
      AIRGAP_ARTIFACTS_PASSWORD: needEnv("AIRGAP_TEST_DAV_PASSWORD"),
    };
    const prefix = `fb-${uid}`;
    const importTo = async (bundle: string, artifacts: string, out: string) => {
      const r = await runCli(
        [
          "bundle",
          "import",
          bundle,
          "--registry",
          `${registry}/${prefix}`,
          "--plain-http",
          "--key",
          keys.pub,
          "--artifacts",
          artifacts,
          "--out",
          out,
          "--json",
        ],
        { env },
      );
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as {
        files: {
          name: string;
          platform: string;
          sha256: string;
          url: string;
          artifact: string;
          uploaded: boolean;
        }[];
      };
    };
    const out = path.join(work, "out-s3");
    const result = await importTo(bundleDir, `s3://${bucket}/airgap`, out);
    expect(result.files).toHaveLength(3);
    for (const f of result.files) {
      expect(f.uploaded).toBe(true);
      const key = `airgap/files/${f.name}/${f.platform}/${f.name}`;
      const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(sha256(Buffer.from(await obj.Body!.transformToByteArray()))).toBe(f.sha256);
      // the OCI artifact in the registry holds the same bytes
      const repo = `${prefix}/files/${f.name}`;
      const tag = f.platform.replaceAll("/", "-");
      expect(f.artifact).toMatch(new RegExp(`^${registry}/${repo}@sha256:[a-f0-9]{64}$`));
      const manifest = await getManifest(plainTarget(), repo, tag);
      const layer = (JSON.parse(manifest.bytes.toString()) as { layers: { digest: string }[] }).layers[0]!;
      expect(sha256(await getBlob(plainTarget(), repo, layer.digest))).toBe(f.sha256);
    }
    const listed = JSON.parse(await readFile(path.join(out, "files.json"), "utf8")) as {
      name: string;
      platform: string;
      sha256: string;
      url: string;
    }[];
    expect(listed.map((f) => `${f.name} ${f.platform}`).sort()).toEqual([
      "notes.txt any",
      "tool linux/amd64",
      "tool linux/arm64",
    ]);
    // images.json lists images only, not file artifacts
    expect(JSON.parse(await readFile(path.join(out, "images.json"), "utf8"))).toEqual([]);

    // a second import uploads nothing
    const again = await importTo(bundleDir, `s3://${bucket}/airgap`, out);
    expect(again.files.every((f) => !f.uploaded)).toBe(true);

    // the incremental bundle lacks the unchanged notes.txt: it is published from the registry
    const dav = `${needEnv("AIRGAP_TEST_DAV_URL")}/${prefix}/`;
    const inc = await importTo(path.join(work, "bundle2"), dav, path.join(work, "out-dav"));
    const auth = Buffer.from(`${env.AIRGAP_ARTIFACTS_USER}:${env.AIRGAP_ARTIFACTS_PASSWORD}`).toString(
      "base64",
    );
    expect(inc.files).toHaveLength(3);
    for (const f of inc.files) {
      expect(f.url).toBe(`${dav}files/${f.name}/${f.platform}/${f.name}`);
      const res = await fetch(f.url, { headers: { authorization: `Basic ${auth}` } });
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(f.sha256);
    }
  });
});
