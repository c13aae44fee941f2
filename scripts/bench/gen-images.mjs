#!/usr/bin/env node
// Benchmark fixture generator: writes an OCI image layout holding N single-platform images whose
// layers are uncompressed tars of incompressible pseudo-random bytes. The bytes come from an
// AES-256-CTR keystream keyed by (seed, image, layer), so the same arguments always produce the same
// digests, and generation runs at memory speed instead of /dev/urandom or gzip speed.
//
//   node scripts/bench/gen-images.mjs --out DIR [--images 3] [--total-mib 990] [--layers 4] [--even] [--seed bench]
//
// --even gives every layer the same size (many small layers: per-item overhead); without it sizes
// are uneven within an image (a big base layer and smaller ones).
//
// Prints one JSON object on stdout: { images: [{ name, digest, bytes }], totalBytes }.
// Each image is tagged in index.json with org.opencontainers.image.ref.name = "img<K>", so
// `skopeo copy oci:DIR:img0 docker://HOST/REPO:TAG` pushes it.
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    images: { type: "string", default: "3" },
    "total-mib": { type: "string", default: "990" },
    layers: { type: "string", default: "4" },
    even: { type: "boolean", default: false },
    seed: { type: "string", default: "cinc-airgap-bench" },
  },
});
if (!values.out) {
  process.stderr.write("usage: gen-images.mjs --out DIR [--images N] [--total-mib M] [--layers L] [--seed S]\n");
  process.exit(2);
}
const out = values.out;
const nImages = positiveInt(values.images, "--images");
const totalMiB = positiveInt(values["total-mib"], "--total-mib");
const nLayers = positiveInt(values.layers, "--layers");
const seed = values.seed;

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;
const blobDir = join(out, "blobs", "sha256");
mkdirSync(blobDir, { recursive: true });
writeFileSync(join(out, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');

// Uneven layer sizes, as real images have (a big base, smaller application layers).
const weights = Array.from({ length: nLayers }, (_, i) => (values.even ? 1 : 2 ** Math.min(nLayers - i, 30)));
const weightSum = weights.reduce((a, b) => a + b, 0);
const perImage = Math.floor((totalMiB * MiB) / nImages);

const zeros = Buffer.alloc(CHUNK);
const index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] };
const summary = { images: [], totalBytes: 0 };

for (let img = 0; img < nImages; img++) {
  const layers = [];
  for (let l = 0; l < nLayers; l++) {
    const payload = Math.max(512, Math.floor((perImage * weights[l]) / weightSum) - 2048);
    layers.push(writeLayer(`${seed}/image-${img}/layer-${l}`, payload, `layer-${l}.bin`));
  }
  const config = {
    created: "2026-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Labels: { "org.opencontainers.image.title": `airgap bench image ${img}` } },
    rootfs: { type: "layers", diff_ids: layers.map((d) => d.digest) },
    history: layers.map((_, l) => ({ created: "2026-01-01T00:00:00Z", created_by: `bench layer ${l}` })),
  };
  const configDesc = writeJson(config, "application/vnd.oci.image.config.v1+json");
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: configDesc,
    layers,
  };
  const manifestDesc = writeJson(manifest, manifest.mediaType);
  const name = `img${img}`;
  index.manifests.push({
    ...manifestDesc,
    platform: { architecture: "amd64", os: "linux" },
    annotations: { "org.opencontainers.image.ref.name": name },
  });
  const bytes = manifestDesc.size + configDesc.size + layers.reduce((n, d) => n + d.size, 0);
  summary.images.push({ name, digest: manifestDesc.digest, bytes });
  summary.totalBytes += bytes;
}
writeFileSync(join(out, "index.json"), `${JSON.stringify(index, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(summary)}\n`);

/** One uncompressed tar holding a single regular file of `payload` keystream bytes. */
function writeLayer(label, payload, fileName) {
  const key = createHash("sha256").update(label).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const hash = createHash("sha256");
  const tmp = join(blobDir, `.tmp-${process.pid}`);
  const fd = openSync(tmp, "w");
  let size = 0;
  const put = (buf) => {
    hash.update(buf);
    writeSync(fd, buf);
    size += buf.length;
  };
  put(tarHeader(fileName, payload));
  for (let left = payload; left > 0; left -= CHUNK) {
    const n = Math.min(CHUNK, left);
    put(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
  }
  const pad = (512 - (payload % 512)) % 512;
  put(Buffer.alloc(pad + 1024)); // padding, then the two zero blocks that end an archive
  closeSync(fd);
  const hex = hash.digest("hex");
  renameSync(tmp, join(blobDir, hex));
  return { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${hex}`, size };
}

function writeJson(value, mediaType) {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = createHash("sha256").update(bytes).digest("hex");
  writeFileSync(join(blobDir, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/** A ustar header for a regular file, mode 0644, fixed mtime (so digests never change). */
function tarHeader(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100, "ascii");
  h.write("0000000\0", 108, "ascii");
  h.write("0000000\0", 116, "ascii");
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "ascii");
  h.write(`${(1767225600).toString(8).padStart(11, "0")}\0`, 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write("0", 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

function positiveInt(text, flag) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`${flag}: "${text}" is not a positive integer\n`);
    process.exit(2);
  }
  return n;
}
