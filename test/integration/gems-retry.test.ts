/**
 * Gem servers that fail for a while: a small relay in front of the real static HTTP server answers
 * 503/429 or drops the connection half-way through a .gem on demand (nginx cannot fail on demand),
 * and forwards everything else unchanged.
 */
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteError } from "../../src/errors.js";
import { gemSourceFiles, resolveGems } from "../../src/sources/gems/index.js";
import { needEnv } from "../helpers/env.js";
import { buildGem, describeGems, requireRuby, writeGemSource } from "../helpers/gems.js";

const uid = `gems-retry-${process.pid}-${Date.now().toString(36)}`;
const RETRY = { retries: 3, baseDelayMs: 10, maxDelayMs: 50 };

type Fault = { path: string; times: number; act: (res: ServerResponse, upstream: IncomingMessage) => void };
let faults: Fault[] = [];
const log: { path: string; faulted: boolean }[] = [];
let server: Server;
let relayUrl: string;
let httpRoot: string;
let work: string;
let built: Map<string, Buffer>;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Requests the relay saw for a path below the fixture source. */
function seen(rel: string): { faulted: boolean }[] {
  return log.filter((l) => l.path === `/${uid}/${rel}`);
}

beforeAll(async () => {
  requireRuby();
  httpRoot = needEnv("AIRGAP_TEST_HTTP_ROOT");
  const upstream = new URL(needEnv("AIRGAP_TEST_HTTP_URL"));
  work = await mkdtemp(path.join(tmpdir(), "airgap-gems-retry-"));
  const out = path.join(work, "built");
  await mkdir(out, { recursive: true });
  const files = [
    await buildGem(path.join(work, "src"), out, {
      name: "fixture-a",
      version: "1.0.0",
      runtime: { "fixture-b": ["~> 1.0"] },
    }),
    await buildGem(path.join(work, "src"), out, { name: "fixture-b", version: "1.0.0" }),
  ];
  built = new Map(await Promise.all(files.map(async (f) => [path.basename(f), await readFile(f)] as const)));
  await writeGemSource(path.join(httpRoot, uid), gemSourceFiles(await describeGems(files)));

  server = createServer((req, res) => {
    const url = req.url ?? "";
    const fault = faults.find((f) => f.times > 0 && url === `/${uid}/${f.path}`);
    log.push({ path: url, faulted: !!fault });
    if (fault) fault.times--;
    const up = httpRequest(
      {
        host: upstream.hostname,
        port: Number(upstream.port),
        method: req.method,
        path: url,
        headers: req.headers,
      },
      (answer) => {
        if (fault) {
          fault.act(res, answer);
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  relayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${uid}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  if (work) await rm(work, { recursive: true, force: true });
  if (httpRoot) await rm(path.join(httpRoot, uid), { recursive: true, force: true });
});

function answer(status: number): Fault["act"] {
  return (res, upstream) => {
    upstream.resume();
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(`relay says ${status}\n`);
  };
}

/** Sends the real headers (with the full length) and half the body, then drops the connection. */
const dropHalfWay: Fault["act"] = (res, upstream) => {
  res.writeHead(upstream.statusCode ?? 200, upstream.headers);
  const chunks: Buffer[] = [];
  upstream.on("data", (c: Buffer) => chunks.push(c));
  upstream.on("end", () => {
    const body = Buffer.concat(chunks);
    res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
  });
};

describe("gem servers that fail for a while", () => {
  it("tries again after 503, 429 and a connection dropped half-way through a .gem, and lands whole files", async () => {
    faults = [
      { path: "info/fixture-a", times: 1, act: answer(503) },
      { path: "info/fixture-b", times: 2, act: answer(429) },
      { path: "gems/fixture-a-1.0.0.gem", times: 1, act: dropHalfWay },
    ];
    const dir = path.join(work, "ok");
    const gems = await resolveGems([{ name: "fixture-a", source: relayUrl, provided: [] }], {
      workDir: dir,
      retry: RETRY,
    });
    expect(gems.map((g) => `${g.name}-${g.version}`).sort()).toEqual(["fixture-a-1.0.0", "fixture-b-1.0.0"]);
    for (const g of gems) {
      const bytes = built.get(`${g.name}-${g.version}.gem`) as Buffer;
      expect(sha256(await readFile(g.file))).toBe(sha256(bytes));
      expect(g.size).toBe(bytes.length);
    }
    expect(seen("info/fixture-a").map((r) => r.faulted)).toEqual([true, false]);
    expect(seen("info/fixture-b").map((r) => r.faulted)).toEqual([true, true, false]);
    expect(seen("gems/fixture-a-1.0.0.gem").map((r) => r.faulted)).toEqual([true, false]);
    expect(readdirSync(dir).sort()).toEqual([
      "fixture-a-1.0.0.gem",
      "fixture-a-1.0.0.gemspec.rz",
      "fixture-b-1.0.0.gem",
      "fixture-b-1.0.0.gemspec.rz",
    ]);
  });

  it("gives up after the retries with the status, leaving no files, and never repeats a 404", async () => {
    log.length = 0;
    faults = [{ path: "gems/fixture-b-1.0.0.gem", times: 100, act: answer(503) }];
    const dir = path.join(work, "down");
    const err = await resolveGems([{ name: "fixture-a", source: relayUrl, provided: [] }], {
      workDir: dir,
      retry: RETRY,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toMatch(
      /gem fixture-b-1\.0\.0 .*fixture-b-1\.0\.0\.gem could not be fetched: HTTP 503/,
    );
    expect(seen("gems/fixture-b-1.0.0.gem")).toHaveLength(RETRY.retries + 1);
    expect(readdirSync(dir)).toEqual([]);

    faults = [];
    const missing = await resolveGems([{ name: "fixture-none", source: relayUrl, provided: [] }], {
      workDir: path.join(work, "none"),
      retry: RETRY,
    }).catch((e) => e);
    expect((missing as Error).message).toContain("HTTP 404");
    expect(seen("info/fixture-none")).toHaveLength(1);
  });
});
