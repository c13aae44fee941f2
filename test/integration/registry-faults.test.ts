/**
 * `bundle create` through a registry that misbehaves: the real plain registry behind a fault proxy
 * that cuts blob downloads, stalls, answers 503/429 and (for one test) ignores Range. The bundle must
 * come out byte-for-byte the same as one made straight from the registry.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { FaultProxy, type Schedule } from "../helpers/fault-proxy.js";
import { closeFixtures, type PushedImage, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";

const registry = plainTarget().host;
const ns = uniqueRepo("faults");
const MiB = 1024 * 1024;
// Short timeouts so a stall costs about a second, not the default 30 s.
const env = { AIRGAP_REGISTRY_TIMEOUT_MS: "1500" };
let work: string;
let big: PushedImage;
let small: PushedImage;
let more: PushedImage;
const proxies: FaultProxy[] = [];

interface CreateJson {
  stats: { pulledBlobs: number; retries: number; resumes: number; restarts: number };
}

function config(host: string): string {
  const file = join(work, `bundle-${Math.random().toString(36).slice(2)}.config.yaml`);
  writeFileSync(
    file,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: faults-test, version: 1.0.0 }
platforms: [linux/amd64]
registries:
  - host: ${host}
    plainHTTP: true
images:
  - ref: ${host}/${ns}/big:1
  - ref: ${host}/${ns}/small:1
  - ref: ${host}/${ns}/more:1
`,
  );
  return file;
}

async function create(host: string, name: string, cache = join(work, `cache-${name}`), json = true) {
  const out = join(work, name);
  const args = ["bundle", "create", "-c", config(host), "-o", out, "--cache", cache];
  const r = await runCli(json ? [...args, "--json"] : args, { env });
  return { r, out, cache };
}

/** What must not depend on the path the bytes took: every blob file and every pinned manifest digest. */
function contentOf(dir: string): { blobs: string[]; manifests: string[] } {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
    manifests: { digest: string }[];
  };
  return {
    blobs: readdirSync(join(dir, "blobs", "sha256")).sort(),
    manifests: index.manifests.map((m) => m.digest).sort(),
  };
}

async function proxy(schedule: Schedule | undefined, range = true): Promise<FaultProxy> {
  const p = await FaultProxy.start({ upstream: registry, schedule, range });
  proxies.push(p);
  return p;
}

let reference: { blobs: string[]; manifests: string[] };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-faults-"));
  big = await pushImage(plainTarget(), `${ns}/big`, "1", {
    layerSizes: [3 * MiB, 2 * MiB, 4 * MiB, 2 * MiB, 3 * MiB, 2 * MiB],
  });
  small = await pushImage(plainTarget(), `${ns}/small`, "1", { layerSizes: [2 * MiB, 2 * MiB] });
  more = await pushImage(plainTarget(), `${ns}/more`, "1", { layerSizes: [2 * MiB, 2 * MiB, 3 * MiB] });
  const { r, out } = await create(registry, "reference");
  expect(r.code, r.stderr).toBe(0);
  reference = contentOf(out);
  for (const l of [...big.layers, ...small.layers, ...more.layers])
    expect(reference.blobs).toContain(l.digest.slice(7));
}, 120_000);

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await closeFixtures();
});

describe("bundle create through faults", () => {
  it("completes through cut, short and stalled downloads, 503 and 429: same bundle, retries reported", async () => {
    const kinds = ["reset", "truncate", "wrong-length"] as const;
    // Own counters, so each kind of fault lands whatever order the concurrent requests come in.
    let fresh = 0; // blob GETs from byte 0
    let other = 0; // requests not picked for a body fault
    const p = await proxy((r) => {
      if (r.blobGet > 0 && !r.range) {
        fresh++;
        if (fresh % 4 === 0) return { kind: kinds[(fresh / 4 - 1) % kinds.length] ?? "reset", at: 0.5 };
        if (fresh === 2) return { kind: "stall", seconds: 4, at: 0.5 };
      }
      other++;
      if (other % 6 === 2) return { kind: "status", status: 503 };
      if (other % 6 === 5) return { kind: "status", status: 429, retryAfter: 1 };
      return undefined;
    });
    const { r, out } = await create(p.host, "through-faults");
    expect(r.code, r.stderr).toBe(0);
    expect(contentOf(out)).toEqual(reference);

    // every kind of fault really happened, and was answered with a Range request, not a new download
    for (const k of ["reset", "truncate", "wrong-length", "stall", "status-503", "status-429"])
      expect(p.counts.faults[k] ?? 0, `${k} in ${JSON.stringify(p.counts)}`).toBeGreaterThan(0);
    const body = JSON.parse(r.stdout) as CreateJson;
    const cuts = ["reset", "truncate", "wrong-length", "stall"].reduce(
      (n, k) => n + (p.counts.faults[k] ?? 0),
      0,
    );
    expect(body.stats.resumes).toBe(cuts);
    // (a Range request may itself meet a 503 and be sent again)
    expect(p.counts.rangeRequests).toBeGreaterThanOrEqual(cuts);
    expect(body.stats.restarts).toBe(0);
    expect(body.stats.retries).toBe(p.injected);
  }, 120_000);

  it("a server without Range support: the cut blob is downloaded again from byte 0 and still verifies", async () => {
    const p = await proxy(
      (r) => (r.blobGet > 0 && !r.range && r.blobGet % 3 === 0 ? { kind: "reset", at: 0.6 } : undefined),
      false,
    );
    const { r, out } = await create(p.host, "no-range", undefined, false);
    expect(r.code, r.stderr).toBe(0);
    expect(contentOf(out)).toEqual(reference);
    const restarts = p.counts.faults.reset ?? 0;
    expect(restarts).toBeGreaterThan(0);
    expect(p.counts.rangeRequests).toBe(restarts);
    // the summary tells the user what the network cost
    expect(r.stderr).toContain(
      `(${restarts} ${restarts === 1 ? "retry" : "retries"}, ${restarts} restarted)`,
    );
  }, 120_000);

  it("a download cut on every attempt: clear error naming the blob and its attempts, exit 1; a rerun without faults completes", async () => {
    const p = await proxy((r) => (r.blobGet > 0 ? { kind: "truncate", at: 0.5 } : undefined));
    const cache = join(work, "cache-every-attempt");
    const failed = await create(p.host, "every-attempt", cache);
    expect(failed.r.code, failed.r.stderr).toBe(1);
    expect(failed.r.stderr).toMatch(/blob sha256:[a-f0-9]{64} from /);
    expect(failed.r.stderr).toContain("failed after 5 attempts");
    expect(failed.r.stderr).toContain("rerun resumes: the cache keeps what verified");

    p.schedule = undefined;
    const again = await create(p.host, "every-attempt-rerun", cache);
    expect(again.r.code, again.r.stderr).toBe(0);
    expect(contentOf(again.out)).toEqual(reference);
    expect((JSON.parse(again.r.stdout) as CreateJson).stats.retries).toBe(0);
  }, 120_000);
});
