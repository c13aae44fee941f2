/**
 * Publishing profiles to S3 on the real Ceph RGW: objects read back and hashed, sha256 metadata,
 * multipart above the threshold with its ETag checked, index.json, and a re-import that uploads nothing.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { publishProfiles } from "../../src/profiles/publish.js";
import { openArtifactRepository } from "../../src/store/open-artifacts.js";
import { S3ArtifactRepository } from "../../src/store/s3.js";
import { needEnv } from "../helpers/env.js";

const MiB = 1024 * 1024;
const bucket = `airgap-profiles-${process.pid}-${Date.now().toString(36)}`;
let endpoint: string;
let raw: S3Client;
let dir: string;
const files: { name: string; version: string; tarPath: string; sha256: string; size: number }[] = [];

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

async function readBack(key: string): Promise<Buffer> {
  const res = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

beforeAll(async () => {
  endpoint = needEnv("AIRGAP_TEST_S3_ENDPOINT");
  raw = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  for (let i = 0; ; i++) {
    try {
      await raw.send(new CreateBucketCommand({ Bucket: bucket }));
      break;
    } catch (err) {
      if (i > 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  dir = await mkdtemp(path.join(tmpdir(), "airgap-s3-"));
  for (const [name, version, size] of [
    ["linux-baseline", "2.9.0", 40_000],
    ["big-profile", "1.0.0", 12 * MiB + 123],
  ] as const) {
    const data = randomBytes(size);
    const tarPath = path.join(dir, `${name}-${version}.tar.gz`);
    await writeFile(tarPath, data);
    files.push({ name, version, tarPath, sha256: sha256(data), size });
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("S3 artifact repository (Ceph RGW)", () => {
  it("uses path-style addressing with a custom endpoint unless told otherwise", async () => {
    const repo = await openArtifactRepository(`s3://${bucket}/site/a`, { endpoint });
    expect(repo).toBeInstanceOf(S3ArtifactRepository);
    expect(repo.url("profiles/x.tar.gz")).toBe(`${endpoint}/${bucket}/site/a/profiles/x.tar.gz`);
    const vhost = S3ArtifactRepository.fromUrl(`s3://${bucket}/p`, {
      endpoint: "https://s3.internal:9000",
      forcePathStyle: false,
    });
    expect(vhost.url("k")).toBe(`https://${bucket}.s3.internal:9000/p/k`);
    const fromEnv = S3ArtifactRepository.fromUrl(`s3://${bucket}`, {
      env: { AWS_ENDPOINT_URL_S3: endpoint },
    });
    expect(fromEnv.forcePathStyle).toBe(true);
    expect(fromEnv.endpoint).toBe(endpoint);
  });

  it("publishes profiles and index.json; the objects read back with the right sha256", async () => {
    const repo = await openArtifactRepository(`s3://${bucket}/site`, {
      endpoint,
      multipartThreshold: 8 * MiB,
      partSize: 5 * MiB,
    });
    const res = await publishProfiles(files, repo);
    expect(res.uploaded.sort()).toEqual(
      [
        "profiles/big-profile/1.0.0/big-profile-1.0.0.tar.gz",
        "profiles/index.json",
        "profiles/linux-baseline/2.9.0/linux-baseline-2.9.0.tar.gz",
      ].sort(),
    );
    expect(res.skipped).toEqual([]);
    for (const f of files) {
      const key = `site/profiles/${f.name}/${f.version}/${f.name}-${f.version}.tar.gz`;
      const body = await readBack(key);
      expect(body.length).toBe(f.size);
      expect(sha256(body)).toBe(f.sha256);
      const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.Metadata?.sha256).toBe(f.sha256);
      expect(res.urls[`profiles/${f.name}/${f.version}/${f.name}-${f.version}.tar.gz`]).toBe(
        `${endpoint}/${bucket}/${key}`,
      );
    }
    // the big one went up in 3 parts
    const bigHead = await raw.send(
      new HeadObjectCommand({
        Bucket: bucket,
        Key: "site/profiles/big-profile/1.0.0/big-profile-1.0.0.tar.gz",
      }),
    );
    expect(bigHead.ETag).toMatch(/-3"$/);
    const index = JSON.parse((await readBack("site/profiles/index.json")).toString("utf8"));
    expect(index).toEqual({
      profiles: [
        {
          name: "big-profile",
          version: "1.0.0",
          sha256: files[1]!.sha256,
          url: `${endpoint}/${bucket}/site/profiles/big-profile/1.0.0/big-profile-1.0.0.tar.gz`,
        },
        {
          name: "linux-baseline",
          version: "2.9.0",
          sha256: files[0]!.sha256,
          url: `${endpoint}/${bucket}/site/profiles/linux-baseline/2.9.0/linux-baseline-2.9.0.tar.gz`,
        },
      ],
    });

    // importing again uploads nothing
    const again = await publishProfiles(files, repo);
    expect(again.uploaded).toEqual([]);
    expect(again.skipped.length).toBe(3);
  });

  it("refuses content whose sha256 differs and leaves no object behind", async () => {
    const repo = await openArtifactRepository(`s3://${bucket}/bad`, { endpoint });
    const data = randomBytes(1000);
    const err = await repo
      .put("x.bin", Readable.from([data]), { sha256: "ab".repeat(32), size: data.length })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`s3://${bucket}/bad/x.bin`);
    expect(await repo.exists("x.bin", sha256(data), data.length)).toBe(false);
    const head = await raw
      .send(new HeadObjectCommand({ Bucket: bucket, Key: "bad/x.bin" }))
      .catch((e: unknown) => e);
    expect((head as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(404);
  });

  it("re-uploads an object whose sha256 metadata differs (ETag check alone, no checksum header)", async () => {
    const repo = await openArtifactRepository(`s3://${bucket}/changed`, { endpoint, sendChecksum: false });
    const a = randomBytes(500);
    const b = randomBytes(500);
    await repo.put("f", Readable.from([a]), { sha256: sha256(a), size: 500 });
    expect(await repo.exists("f", sha256(a), 500)).toBe(true);
    expect(await repo.exists("f", sha256(b), 500)).toBe(false);
    await repo.put("f", Readable.from([b]), { sha256: sha256(b), size: 500 });
    expect(sha256(await readBack("changed/f"))).toBe(sha256(b));
  });
});
