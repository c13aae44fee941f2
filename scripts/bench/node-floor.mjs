#!/usr/bin/env node
// Benchmark reference, not airgap: every blob of a list fetched with undici alone over the same
// transport, each hashed (SHA-256, checked against its digest) and written to a file, 4 at a time
// as airgap's create does on 2 cores. What one Node.js thread does with these bytes on this
// machine, with no airgap code in the way: the floor for airgap's own pull.
//
//   node scripts/bench/node-floor.mjs --urls FILE --out DIR [--ca FILE] [--user U --password P]
//
// FILE holds one blob URL per line (…/blobs/sha256:<hex>). DIR is created; the caller removes it
// (outside the measured time, as airgap's cache is not removed inside its create).
import { createHash } from "node:crypto";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";

const { values: o } = parseArgs({
  options: {
    urls: { type: "string" },
    out: { type: "string" },
    ca: { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
    concurrency: { type: "string", default: "4" },
  },
});
if (!o.urls || !o.out) throw new Error("node-floor.mjs: --urls and --out are required");
const urls = readFileSync(o.urls, "utf8").split("\n").filter(Boolean);
const headers = o.user ? { authorization: `Basic ${Buffer.from(`${o.user}:${o.password}`).toString("base64")}` } : {};
const agent = new Agent({ connect: o.ca ? { ca: readFileSync(o.ca, "utf8") } : {} });
mkdirSync(o.out, { recursive: true });

async function fetchOne(url) {
  const want = url.slice(url.lastIndexOf("/") + 1);
  let res = await request(url, { dispatcher: agent, headers });
  // a registry may redirect blob reads to its storage
  for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 5; hops++) {
    await res.body.dump();
    res = await request(new URL(res.headers.location, url), { dispatcher: agent });
  }
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
  const hash = createHash("sha256");
  res.body.on("data", (chunk) => hash.update(chunk));
  await pipeline(res.body, createWriteStream(join(o.out, want.replace(":", "-")), { highWaterMark: 8 << 20 }));
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== want) throw new Error(`${url}: content has digest ${got}`);
}

try {
  let next = 0;
  const worker = async () => {
    while (next < urls.length) await fetchOne(urls[next++]);
  };
  await Promise.all(Array.from({ length: Number(o.concurrency) }, worker));
} finally {
  await agent.close();
}
