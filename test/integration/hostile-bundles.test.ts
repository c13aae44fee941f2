/**
 * Hostile bundles, built at test time: tar entries that escape (`..`, absolute paths, links,
 * devices, fifos), repeat a name or declare a huge size; manifests that are oversized, cyclic,
 * carry 100k descriptors or do not match their digest; unlisted files; and a config that is an
 * alias bomb. For each, in every form it can take (directory, .tar, .tar.zst, standard input),
 * `bundle verify` and `bundle import` exit 3 (2 for the config) naming the item, within a time
 * limit, push nothing to the registry and write nothing in their working directory.
 *
 * The bundles are unsigned and their SHA256SUMS is rewritten after each edit, so the fault under
 * test is the only thing wrong with them: the refusal cannot come from a checksum by accident.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Header } from "tar";
import { type Dispatcher, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalCompare } from "../../src/bundle/archive/paths.js";
import { encodeHeader, padLength } from "../../src/bundle/archive/tar-format.js";
import { runCli } from "../helpers/cli.js";
import { closeFixtures, plainTarget, pushImage, uniqueRepo } from "../helpers/fixtures.js";
import { copyTree, createBundle, writeBundleConfig } from "./import-helpers.js";

/** Far longer than any refusal takes; a hang is killed here (exit 137) and fails the test. */
const HANG_MS = 60_000;
const MiB = 1024 * 1024;

const target = plainTarget();
const ns = uniqueRepo("hostile");
let work: string;
let base: string;
let n = 0;

const env = { AIRGAP_REQUIRE_SIGNATURE: undefined };

function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Every regular file of a directory bundle, relative, in the order the writer stores them. */
function filesOf(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...filesOf(dir, p));
    else if (d.isFile()) out.push(p);
  }
  return rel ? out : out.sort(canonicalCompare);
}

/** SHA256SUMS rewritten to match whatever the directory now holds, minus `unlisted`. */
function reseal(dir: string, unlisted: string[] = []): void {
  const lines = filesOf(dir)
    .filter((p) => p !== "SHA256SUMS" && !unlisted.includes(p))
    .sort()
    .map((p) => `${sha256(readFileSync(join(dir, p)))}  ${p}\n`);
  writeFileSync(join(dir, "SHA256SUMS"), lines.join(""));
}

function fresh(): string {
  const to = join(work, `case-${n++}`);
  copyTree(base, to);
  return to;
}

function writeBlob(dir: string, bytes: Buffer | string, hex = sha256(bytes)): string {
  writeFileSync(join(dir, "blobs/sha256", hex), bytes);
  return hex;
}

interface IndexJson {
  schemaVersion: 2;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

function readIndex(dir: string): IndexJson {
  return JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as IndexJson;
}

/** One raw tar entry: a header with any type, path, link or declared size, then `body`. */
function rawEntry(h: {
  path: string;
  type: string;
  size?: number;
  linkpath?: string;
  body?: Buffer;
}): Buffer {
  const block = Buffer.alloc(512);
  new Header({
    path: h.path,
    type: h.type as never,
    size: h.size ?? h.body?.length ?? 0,
    linkpath: h.linkpath,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: new Date(0),
  }).encode(block);
  const body = h.body ?? Buffer.alloc(0);
  return Buffer.concat([block, body, Buffer.alloc(padLength(body.length))]);
}

/**
 * The directory bundle as a tar, in stored order; `extra` entries go in after index.json (before
 * the blobs), where a streaming reader meets them while the bundle is otherwise fine.
 */
function tarOf(dir: string, extra: Buffer[] = []): Buffer {
  const parts: Buffer[] = [];
  for (const p of filesOf(dir)) {
    const body = readFileSync(join(dir, p));
    parts.push(encodeHeader(p, body.length, new Date(0), "File"), body, Buffer.alloc(padLength(body.length)));
    if (p === "index.json") parts.push(...extra);
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

type Form = "dir" | "tar" | "tar.zst" | "stdin";

interface Hostile {
  /** A directory bundle; unless `dirOnly`, also read as a tar of its regular files. */
  dir?: string;
  dirOnly?: boolean;
  /** A tar (also compressed, and on standard input). */
  tar?: Buffer;
}

function materialize(name: string, h: Hostile): { form: Form; input: string; stdin?: Buffer }[] {
  const out: { form: Form; input: string; stdin?: Buffer }[] = [];
  if (h.dir) out.push({ form: "dir", input: h.dir });
  const tar = h.tar ?? (h.dir && !h.dirOnly ? tarOf(h.dir) : undefined);
  if (tar) {
    const file = join(work, `${name}-${n++}.tar`);
    writeFileSync(file, tar);
    execFileSync("zstd", ["-q", "-f", file, "-o", `${file}.zst`]);
    out.push(
      { form: "tar", input: file },
      { form: "tar.zst", input: `${file}.zst` },
      {
        form: "stdin",
        input: "-",
        stdin: tar,
      },
    );
  }
  return out;
}

/** Every repository of the plain registry (test fixtures included), following pagination. */
async function catalog(): Promise<string[]> {
  const out: string[] = [];
  let url: string | undefined = `http://${target.host}/v2/_catalog?n=1000`;
  while (url) {
    const res: Dispatcher.ResponseData = await request(url);
    const body = (await res.body.json()) as { repositories: string[] | null };
    out.push(...(body.repositories ?? []));
    const link: string | string[] | undefined = res.headers.link;
    const m: RegExpExecArray | null = typeof link === "string" ? /<([^>]+)>/.exec(link) : null;
    url = m ? new URL(m[1]!, `http://${target.host}`).toString() : undefined;
  }
  return out;
}

/**
 * Every tag in the repositories under `prefix`. A streamed import (.tar.zst, stdin) uploads blobs
 * as they arrive and verified, so a repository may exist; a tag (and its manifest) must not.
 */
async function tagsUnder(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const repo of (await catalog()).filter((r) => r.startsWith(`${prefix}/`))) {
    const res = await request(`http://${target.host}/v2/${repo}/tags/list`);
    const body = (await res.body.json()) as { tags?: string[] | null };
    out.push(...(body.tags ?? []).map((t) => `${repo}:${t}`));
  }
  return out;
}

/**
 * Runs verify and import on every form; each must exit `code` with stderr matching `message`,
 * in time, leave its working directory empty and push nothing under its own registry prefix.
 */
async function expectRefused(name: string, h: Hostile, message: RegExp, code = 3): Promise<void> {
  for (const { form, input, stdin } of materialize(name, h)) {
    const prefix = uniqueRepo("hostile-import");
    const runs = [
      { what: `verify ${form}`, args: ["bundle", "verify", input] },
      {
        what: `import ${form}`,
        args: ["bundle", "import", input, "--registry", `${target.host}/${prefix}`, "--plain-http"],
      },
    ];
    await Promise.all(
      runs.map(async (run) => {
        const cwd = mkdtempSync(join(work, "cwd-"));
        const started = Date.now();
        const r = await runCli(
          run.args.map((a) => (a === input && input !== "-" ? input : a)),
          { input: stdin, cwd, env: { ...env, HOME: cwd }, killAfterMs: HANG_MS },
        );
        const took = Date.now() - started;
        expect(r.code, `${name}: ${run.what}: ${r.stderr}`).toBe(code);
        expect(r.stderr, `${name}: ${run.what}`).toMatch(message);
        expect(took, `${name}: ${run.what}`).toBeLessThan(HANG_MS);
        expect(readdirSync(cwd), `${name}: ${run.what} wrote in its working directory`).toEqual([]);
      }),
    );
    expect(await tagsUnder(prefix), `${name}: import ${form} tagged`).toEqual([]);
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-hostile-"));
  await pushImage(target, `${ns}/app`, "1.0", { layerSizes: [4000] });
  base = join(work, "base");
  const cfg = writeBundleConfig(work, "hostile", [`${target.host}/${ns}/app:1.0`]);
  await createBundle(cfg, base, { cache: join(work, "cache") });
}, 120_000);

afterAll(async () => {
  await closeFixtures();
  rmSync(work, { recursive: true, force: true });
});

describe("hostile bundles are refused: exit 3, the item named, nothing pushed or written", () => {
  it("the untouched bundle verifies and imports in every form (control)", async () => {
    for (const { form, input, stdin } of materialize("control", { dir: base })) {
      const cwd = mkdtempSync(join(work, "cwd-"));
      const v = await runCli(["bundle", "verify", input], { input: stdin, cwd, env, killAfterMs: HANG_MS });
      expect(v.code, `verify ${form}: ${v.stderr}`).toBe(0);
      const prefix = uniqueRepo("hostile-control");
      const out = join(work, `out-${n++}`);
      const i = await runCli(
        ["bundle", "import", input, "--registry", `${target.host}/${prefix}`, "--plain-http", "--out", out],
        { input: stdin, cwd, env: { ...env, HOME: cwd }, killAfterMs: HANG_MS },
      );
      expect(i.code, `import ${form}: ${i.stderr}`).toBe(0);
      expect(await tagsUnder(prefix)).toEqual([`${prefix}/${ns}/app:1.0`]);
    }
  }, 180_000);

  describe("tar entries", () => {
    it.each([
      [
        "a path with ..",
        { path: "../evil", type: "File", body: Buffer.from("x") },
        /"\.\.\/evil" escapes the bundle root/,
      ],
      [
        "a path with .. inside",
        { path: "blobs/../../evil", type: "File", body: Buffer.from("x") },
        /"blobs\/\.\.\/\.\.\/evil" escapes/,
      ],
      [
        "an absolute path",
        { path: "/tmp/evil", type: "File", body: Buffer.from("x") },
        /absolute path "\/tmp\/evil"/,
      ],
      [
        "a symbolic link",
        { path: "evil-link", type: "SymbolicLink", linkpath: "/etc/passwd" },
        /"evil-link" is a SymbolicLink/,
      ],
      ["a hard link", { path: "evil-hard", type: "Link", linkpath: "bundle.json" }, /"evil-hard" is a Link/],
      [
        "a character device",
        { path: "evil-dev", type: "CharacterDevice" },
        /"evil-dev" is a CharacterDevice/,
      ],
      ["a block device", { path: "evil-blk", type: "BlockDevice" }, /"evil-blk" is a BlockDevice/],
      ["a fifo", { path: "evil-fifo", type: "FIFO" }, /"evil-fifo" is a FIFO/],
      [
        "a name stored twice",
        { path: "bundle.json", type: "File", body: Buffer.from("{}") },
        /"bundle\.json" appears twice/,
      ],
      [
        "a huge declared size (1 TiB, 1 byte present)",
        { path: "huge.bin", type: "File", size: 2 ** 40, body: Buffer.from("x") },
        /truncated: it ends inside huge\.bin|huge\.bin is larger than/,
      ],
    ])(
      "%s",
      async (name, entry, message) => {
        const dir = fresh();
        await expectRefused(name, { tar: tarOf(dir, [rawEntry(entry)]) }, message);
      },
      240_000,
    );

    it("a symbolic link, a fifo in a directory bundle", async () => {
      const withLink = fresh();
      symlinkSync("/etc/passwd", join(withLink, "blobs/sha256/evil-link"));
      await expectRefused(
        "directory symlink",
        { dir: withLink, dirOnly: true },
        /blobs\/sha256\/evil-link in the bundle directory is a symbolic link/,
      );
      const withFifo = fresh();
      execFileSync("mkfifo", [join(withFifo, "evil-fifo")]);
      await expectRefused(
        "directory fifo",
        { dir: withFifo, dirOnly: true },
        /evil-fifo in the bundle directory is not a regular file/,
      );
    }, 240_000);
  });

  describe("manifests", () => {
    /** Replaces the bundle's root manifest with `edit(manifest)`, pointing index.json at it. */
    function withRoot(
      edit: (m: Record<string, unknown>) => unknown,
      mediaType?: string,
    ): { dir: string; hex: string } {
      const dir = fresh();
      const index = readIndex(dir);
      const root = index.manifests[0]!;
      const old = root.digest.slice("sha256:".length);
      const m = JSON.parse(readFileSync(join(dir, "blobs/sha256", old), "utf8")) as Record<string, unknown>;
      const bytes = Buffer.from(JSON.stringify(edit(m)));
      unlinkSync(join(dir, "blobs/sha256", old));
      const hex = writeBlob(dir, bytes);
      index.manifests[0] = {
        ...root,
        digest: `sha256:${hex}`,
        size: bytes.length,
        ...(mediaType && { mediaType }),
      };
      writeFileSync(join(dir, "index.json"), JSON.stringify(index));
      reseal(dir);
      return { dir, hex };
    }

    it("an oversized manifest (5 MiB)", async () => {
      const { dir, hex } = withRoot((m) => ({
        ...m,
        annotations: { ...(m.annotations as object), padding: "x".repeat(5 * MiB) },
      }));
      await expectRefused(
        "oversized manifest",
        { dir },
        new RegExp(`blobs/sha256/${hex}.*(over the 4 MiB limit|larger than the 4194304-byte limit)`),
      );
    }, 240_000);

    it("an index with 100k descriptors", async () => {
      const { dir, hex } = withRoot(
        (m) => ({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: Array.from({ length: 100_000 }, () => ({
            mediaType: m.mediaType,
            digest: `sha256:${randomBytes(32).toString("hex")}`,
            size: 1000,
          })),
        }),
        "application/vnd.oci.image.index.v1+json",
      );
      await expectRefused("100k descriptors", { dir }, new RegExp(`blobs/sha256/${hex}`));
    }, 240_000);

    it("index.json with 100k descriptors that point nowhere", async () => {
      const dir = fresh();
      const index = readIndex(dir);
      for (let i = 0; i < 100_000; i++) {
        const { annotations: _, ...root } = index.manifests[0]!;
        index.manifests.push({ ...root, digest: `sha256:${randomBytes(32).toString("hex")}` });
      }
      writeFileSync(join(dir, "index.json"), JSON.stringify(index));
      reseal(dir);
      await expectRefused(
        "index.json 100k",
        { dir },
        /index\.json refers to sha256:[0-9a-f]{64}.*which is not in the bundle/,
      );
    }, 240_000);

    it("an index that names itself", async () => {
      const dir = fresh();
      const index = readIndex(dir);
      const self = randomBytes(32).toString("hex");
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          { mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${self}`, size: 300 },
        ],
      });
      writeBlob(dir, body, self);
      index.manifests.push({
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: `sha256:${self}`,
        size: body.length,
        annotations: { "org.opencontainers.image.ref.name": "loop" },
      });
      writeFileSync(join(dir, "index.json"), JSON.stringify(index));
      reseal(dir);
      await expectRefused(
        "self index",
        { dir },
        new RegExp(
          `blobs/sha256/${self}: (content has digest|SHA256SUMS lists .* not the digest its name gives)`,
        ),
      );
    }, 240_000);

    it("two indexes that name each other", async () => {
      const dir = fresh();
      const index = readIndex(dir);
      const [a, b] = [randomBytes(32).toString("hex"), randomBytes(32).toString("hex")];
      const naming = (other: string) =>
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [
            { mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${other}`, size: 300 },
          ],
        });
      writeBlob(dir, naming(b), a);
      writeBlob(dir, naming(a), b);
      index.manifests.push({
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: `sha256:${a}`,
        size: 300,
      });
      writeFileSync(join(dir, "index.json"), JSON.stringify(index));
      reseal(dir);
      await expectRefused(
        "two-cycle",
        { dir },
        new RegExp(
          `blobs/sha256/(${a}|${b}): (content has digest|SHA256SUMS lists .* not the digest its name gives)`,
        ),
      );
    }, 240_000);

    it("a manifest whose content does not match its digest", async () => {
      const dir = fresh();
      const root = readIndex(dir).manifests[0]!.digest.slice("sha256:".length);
      const file = join(dir, "blobs/sha256", root);
      const m = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      writeFileSync(file, JSON.stringify({ ...m, annotations: { swapped: "yes" } }));
      reseal(dir);
      await expectRefused(
        "digest mismatch",
        { dir },
        new RegExp(
          `blobs/sha256/${root}: (content has digest|SHA256SUMS lists .* not the digest its name gives)`,
        ),
      );
    }, 240_000);

    it("a descriptor whose size is not its blob's", async () => {
      const dir = fresh();
      const index = readIndex(dir);
      const root = index.manifests[0]!;
      index.manifests[0] = { ...root, size: root.size + 7 };
      writeFileSync(join(dir, "index.json"), JSON.stringify(index));
      reseal(dir);
      await expectRefused(
        "descriptor size",
        { dir },
        new RegExp(
          `index\\.json says blobs/sha256/${root.digest.slice(7)} is ${root.size + 7} bytes, but it is ${root.size}`,
        ),
      );
    }, 240_000);

    it("a file that SHA256SUMS does not list", async () => {
      const dir = fresh();
      writeFileSync(join(dir, "notes.txt"), "not listed\n");
      reseal(dir, ["notes.txt"]);
      await expectRefused("unlisted", { dir }, /notes\.txt is in the bundle but not listed in SHA256SUMS/);
    }, 240_000);
  });

  it("an alias bomb as import or bundle config: exit 2 at its line, quickly", async () => {
    const levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    const bomb = join(work, "bomb.yaml");
    writeFileSync(
      bomb,
      [
        "apiVersion: cinc-airgap/v1",
        "kind: Import",
        `a: &a [${Array(9).fill('"lol"').join(",")}]`,
        ...levels.slice(1).map((l, i) => `${l}: &${l} [${Array(9).fill(`*${levels[i]}`).join(",")}]`),
        "",
      ].join("\n"),
    );
    const prefix = uniqueRepo("hostile-bomb");
    for (const args of [
      ["bundle", "import", base, "--registry", `${target.host}/${prefix}`, "--plain-http", "--config", bomb],
      ["bundle", "create", "-c", bomb, "-o", join(work, "never")],
    ]) {
      const cwd = mkdtempSync(join(work, "cwd-"));
      const started = Date.now();
      const r = await runCli(args, { cwd, env: { ...env, HOME: cwd }, killAfterMs: HANG_MS });
      expect(r.code, `${args[1]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/bomb\.yaml:4:\d+: YAML: aliases expand to more than 1000 nodes/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(readdirSync(cwd)).toEqual([]);
    }
    expect(await tagsUnder(prefix)).toEqual([]);
  }, 120_000);
});
