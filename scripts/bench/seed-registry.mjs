#!/usr/bin/env node
// Benchmark setup: puts the images of an OCI layout (as gen-images.mjs writes it) straight into the
// storage folder of a CNCF distribution registry (filesystem driver), the layout that registry reads:
//
//   docker/registry/v2/blobs/sha256/<hex[0:2]>/<hex>/data
//   docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link                 (config, layers)
//   docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link
//   docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link
//   docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
//
// Blob files are hard-linked (copied when that fails), so seeding 5,000 blobs takes a second where
// pushing them through the registry's API took minutes on a loaded machine. Nothing here is measured:
// the benchmark afterwards reads every manifest back through the API and compares its digest.
//
//   node scripts/bench/seed-registry.mjs --layout DIR --storage DIR --repo-prefix bench/ --tag v1
//
// Image `img<K>` of the layout becomes repository `<repo-prefix>img<K>`, tagged `--tag`.
import { copyFileSync, linkSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    layout: { type: "string" },
    storage: { type: "string" },
    "repo-prefix": { type: "string", default: "bench/" },
    tag: { type: "string", default: "v1" },
  },
});
if (!values.layout || !values.storage) {
  process.stderr.write("usage: seed-registry.mjs --layout DIR --storage DIR [--repo-prefix P] [--tag T]\n");
  process.exit(2);
}
const layout = values.layout;
const v2 = join(values.storage, "docker", "registry", "v2");
const HEX = /^sha256:([a-f0-9]{64})$/;

function hexOf(digest) {
  const m = HEX.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1];
}

const stored = new Set();
function storeBlob(hex) {
  if (stored.has(hex)) return;
  const dir = join(v2, "blobs", "sha256", hex.slice(0, 2), hex);
  mkdirSync(dir, { recursive: true });
  const from = join(layout, "blobs", "sha256", hex);
  try {
    linkSync(from, join(dir, "data"));
  } catch {
    copyFileSync(from, join(dir, "data"));
  }
  stored.add(hex);
}

function link(path, hex) {
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "link"), `sha256:${hex}`);
}

const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
let blobs = 0;
for (const m of index.manifests) {
  const name = m.annotations?.["org.opencontainers.image.ref.name"];
  if (!name) continue;
  const repo = join(v2, "repositories", `${values["repo-prefix"]}${name}`);
  const manifestHex = hexOf(m.digest);
  const manifest = JSON.parse(readFileSync(join(layout, "blobs", "sha256", manifestHex), "utf8"));
  for (const d of [manifest.config, ...manifest.layers]) {
    const hex = hexOf(d.digest);
    storeBlob(hex);
    link(join(repo, "_layers", "sha256", hex), hex);
    blobs++;
  }
  storeBlob(manifestHex);
  link(join(repo, "_manifests", "revisions", "sha256", manifestHex), manifestHex);
  link(join(repo, "_manifests", "tags", values.tag, "current"), manifestHex);
  link(join(repo, "_manifests", "tags", values.tag, "index", "sha256", manifestHex), manifestHex);
  blobs++;
}
process.stdout.write(`${JSON.stringify({ blobs, files: stored.size })}\n`);
