#!/usr/bin/env node
// S3 throughput on this machine, for docs/scale.md: one object of --mib MiB uploaded through
// airgap's own S3 artifact repository (multipart, sha256 verified while it streams), 1 and 4 at
// once, then read back whole and as 4 parallel ranged GETs (how a shard reads its part of a bundle
// in object storage). Uses the test servers' Ceph RGW:
//   eval "$(bash scripts/test-servers.sh env)"; npm run build; node scripts/bench/s3.mjs [--mib 256]
import { createCipheriv, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { openArtifactRepository } from "../../dist/store/open-artifacts.js";

const { values } = parseArgs({ options: { mib: { type: "string", default: "256" } } });
const size = Number(values.mib) * 1024 * 1024;
const endpoint = process.env.AIRGAP_TEST_S3_ENDPOINT;
if (!endpoint) throw new Error("AIRGAP_TEST_S3_ENDPOINT is not set: eval the test servers' env first");
const bucket = `scale-${Date.now().toString(36)}`;
const s3 = new S3Client({ endpoint, forcePathStyle: true, region: "us-east-1", requestChecksumCalculation: "WHEN_REQUIRED" });
await s3.send(new CreateBucketCommand({ Bucket: bucket }));

/** Incompressible, deterministic bytes (AES-CTR keystream), without holding them in memory. */
function data(seed) {
  const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
  const chunk = Buffer.alloc(1024 * 1024);
  let left = size;
  return Readable.from(
    (function* () {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        yield cipher.update(chunk.subarray(0, n));
      }
    })(),
  );
}
async function digestOf(seed) {
  const h = createHash("sha256");
  for await (const c of data(seed)) h.update(c);
  return h.digest("hex");
}
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const repo = await openArtifactRepository(`s3://${bucket}/scale`, { endpoint });
const mb = (bytes, s) => (bytes / 1048576 / s).toFixed(0);
for (const parallel of [1, 4]) {
  const seeds = Array.from({ length: parallel }, (_, i) => `p${parallel}-${i}`);
  const sums = await Promise.all(seeds.map(digestOf));
  const l = load();
  const t0 = performance.now();
  await Promise.all(seeds.map((s, i) => repo.put(`obj-${s}`, data(s), { sha256: sums[i], size })));
  const s = (performance.now() - t0) / 1000;
  console.log(`put ${parallel} x ${size / 1048576} MiB (airgap S3 repository): ${s.toFixed(2)} s, ${mb(parallel * size, s)} MiB/s; load ${l}`);
}
const key = "scale/obj-p1-0";
{
  const l = load();
  const t0 = performance.now();
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  let n = 0;
  for await (const c of res.Body) n += c.length;
  const s = (performance.now() - t0) / 1000;
  console.log(`get 1 x ${n / 1048576} MiB whole: ${s.toFixed(2)} s, ${mb(n, s)} MiB/s; load ${l}`);
}
{
  const l = load();
  const part = size / 4;
  const t0 = performance.now();
  const got = await Promise.all(
    [0, 1, 2, 3].map(async (i) => {
      const res = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${i * part}-${(i + 1) * part - 1}` }),
      );
      let n = 0;
      for await (const c of res.Body) n += c.length;
      return n;
    }),
  );
  const n = got.reduce((a, b) => a + b, 0);
  const s = (performance.now() - t0) / 1000;
  console.log(`get 4 ranges of ${part / 1048576} MiB in parallel: ${s.toFixed(2)} s, ${mb(n, s)} MiB/s; load ${l}`);
}
for (const k of ["p1-0", "p4-0", "p4-1", "p4-2", "p4-3"]) {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `scale/obj-${k}` }));
}
await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
s3.destroy();
