/**
 * Memory stays flat with a bundle in S3: `bundle create -o s3://…` (multipart upload), `bundle
 * verify s3://…` (ranged GETs, parallel hashing) and `bundle import s3://…` of a bundle holding one
 * big layer, each run under
 * /usr/bin/time for its peak RSS. The layer is 64 MiB by default; AIRGAP_TEST_S3_RSS_MIB=1024 makes
 * it the ~1 GB measurement recorded in docs/bundle-format.md.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";
import { writeBundleConfig } from "./import-helpers.js";

const MiB = 1024 * 1024;
const layerMiB = Number(process.env.AIRGAP_TEST_S3_RSS_MIB ?? 64);
/**
 * Peak RSS allowed for each command, whatever the bundle's size: flat memory, with room for the GC's
 * timing (create -o s3:// peaks at 181–201 MiB, 64 MiB or 1 GiB; 4 parts of 16 MiB in flight took it to 248).
 */
const RSS_LIMIT_MIB = 240;
const target = plainTarget();
const ns = uniqueRepo("s3-rss");
const bucket = `airgap-rss-${process.pid}-${Date.now().toString(36)}`;
let endpoint: string;
let work: string;
let cfg: string;

/** Runs the built CLI under /usr/bin/time; returns exit code, stderr and peak RSS in MiB. */
function timed(args: string[]): Promise<{ code: number; stderr: string; rssMiB: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "/usr/bin/time",
      ["-f", "AIRGAP_RSS_KB=%M AIRGAP_SECONDS=%e", process.execPath, CLI, ...args],
      {
        env: {
          ...process.env,
          AWS_ENDPOINT_URL_S3: endpoint,
          AWS_CA_BUNDLE: "",
          AIRGAP_REQUIRE_SIGNATURE: "",
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const m = /AIRGAP_RSS_KB=(\d+) AIRGAP_SECONDS=([\d.]+)/.exec(stderr);
      if (!m) return reject(new Error(`no RSS figure from /usr/bin/time: ${stderr}`));
      resolve({ code: code ?? -1, stderr, rssMiB: Number(m[1]) / 1024, seconds: Number(m[2]) });
    });
  });
}

beforeAll(async () => {
  endpoint = needEnv("AIRGAP_TEST_S3_ENDPOINT");
  const s3 = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  for (let i = 0; ; i++) {
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      break;
    } catch (err) {
      if (i > 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  work = mkdtempSync(join(tmpdir(), "airgap-s3-rss-"));
  await pushImage(target, `${ns}/big`, "1", { layerSizes: [layerMiB * MiB] });
  cfg = writeBundleConfig(work, "rss", [`${target.host}/${ns}/big:1`]);
}, 600_000);

afterAll(async () => {
  await closeFixtures();
  // a gigabyte left in the shared test RGW would only fill its disk
  await new S3Client({ endpoint, forcePathStyle: true, region: process.env.AWS_REGION ?? "us-east-1" })
    .send(new DeleteObjectCommand({ Bucket: bucket, Key: "big.tar" }))
    .catch(() => undefined);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe(`memory with a ${layerMiB} MiB bundle in S3`, () => {
  it("create -o s3://, verify s3:// and import s3:// stay under the RSS limit", async () => {
    const url = `s3://${bucket}/big.tar`;
    const c = await timed(["bundle", "create", "-c", cfg, "-o", url, "--cache", join(work, "cache")]);
    expect(c.code, c.stderr).toBe(0);
    const s3 = new S3Client({
      endpoint,
      forcePathStyle: true,
      region: process.env.AWS_REGION ?? "us-east-1",
    });
    const size = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "big.tar" }))).ContentLength!;
    expect(size).toBeGreaterThan(layerMiB * MiB);
    const v = await timed(["bundle", "verify", url]);
    expect(v.code, v.stderr).toBe(0);
    const i = await timed([
      "bundle",
      "import",
      url,
      "--registry",
      `${target.host}/${ns}-imported`,
      "--plain-http",
      "--out",
      join(work, "out"),
    ]);
    expect(i.code, i.stderr).toBe(0);
    process.stdout.write(
      `S3 bundle of ${(size / MiB).toFixed(0)} MiB: create (pull + upload) peak RSS ${c.rssMiB.toFixed(0)} MiB in ${c.seconds}s; verify ${v.rssMiB.toFixed(0)} MiB in ${v.seconds}s; import ${i.rssMiB.toFixed(0)} MiB in ${i.seconds}s\n`,
    );
    expect(c.rssMiB).toBeLessThan(RSS_LIMIT_MIB);
    expect(v.rssMiB).toBeLessThan(RSS_LIMIT_MIB);
    expect(i.rssMiB).toBeLessThan(RSS_LIMIT_MIB);
  }, 1_200_000);
});
