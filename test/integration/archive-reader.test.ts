import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Header } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BundleReader, openBundle } from "../../src/bundle/archive/reader.js";
import { type BundleFile, writeBundle } from "../../src/bundle/archive/writer.js";
import { IntegrityError } from "../../src/errors.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let work: string;
let files: BundleFile[];

interface Seen {
  path: string;
  size: number;
  sha256: string;
}

async function readAll(r: BundleReader): Promise<Seen[]> {
  const out: Seen[] = [];
  for await (const e of r.entries()) {
    const h = createHash("sha256");
    let n = 0;
    for await (const c of e.stream) {
      h.update(c as Buffer);
      n += (c as Buffer).length;
    }
    expect(n).toBe(e.size);
    out.push({ path: e.path, size: e.size, sha256: h.digest("hex") });
  }
  return out;
}

async function refusal(input: string): Promise<IntegrityError> {
  try {
    const r = await openBundle(input);
    await readAll(r);
    await r.close();
  } catch (err) {
    expect(err).toBeInstanceOf(IntegrityError);
    return err as IntegrityError;
  }
  throw new Error(`${input} was accepted`);
}

/** A raw tar built from hand-made headers, for archives our writer would never produce. */
function rawTar(
  entries: { path: string; type?: string; body?: Buffer; linkpath?: string }[],
  end = true,
): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body ?? Buffer.alloc(0);
    const h = new Header({
      path: e.path,
      mode: 0o644,
      size: e.type && e.type !== "File" ? 0 : body.length,
      mtime: new Date(0),
      type: (e.type ?? "File") as "File",
      linkpath: e.linkpath ?? "",
      uid: 0,
      gid: 0,
    });
    const b = Buffer.alloc(512);
    h.encode(b);
    blocks.push(b);
    if (body.length) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "archive-reader-"));
  const mem = (path: string, b: Buffer): BundleFile => ({ path, size: b.length, source: { bytes: b } });
  const blobs = [randomBytes(2 * 1024 * 1024 + 3), randomBytes(100), Buffer.alloc(0), randomBytes(70000)];
  files = [
    mem("SHA256SUMS.sig", Buffer.from("sig")),
    mem("SHA256SUMS", Buffer.from("sums\n")),
    mem("bundle.json", Buffer.from("{}")),
    mem("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}')),
    mem("index.json", Buffer.from('{"schemaVersion":2,"manifests":[]}')),
    ...blobs.map((b) => mem(`blobs/sha256/${sha(b)}`, b)),
  ];
  const w = (path: string, extra: object = {}) =>
    writeBundle(files, { path, format: "tar", compress: "none", ...extra }, { mtime: new Date(0) });
  await writeBundle(files, { path: join(work, "dir"), format: "dir", compress: "none" });
  await w(join(work, "b.tar"));
  await w(join(work, "b.tar.zst"), { compress: "zstd" });
  await w(join(work, "p.tar"), { splitSize: 1024 * 1024 });
  await w(join(work, "pz.tar.zst"), { compress: "zstd", splitSize: 1024 * 1024 });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("openBundle", () => {
  it("yields identical entries from a directory, tar, tar.zst, parts and standard input", async () => {
    const expected: Seen[] = files.map((f) => {
      const b = (f.source as { bytes: Buffer }).bytes;
      return { path: f.path, size: b.length, sha256: sha(b) };
    });
    const canonical = [
      ...expected.slice(0, 5),
      ...expected.slice(5).sort((a, b) => (a.path < b.path ? -1 : 1)),
    ];
    const cases: [string, string, boolean, Seen[]][] = [
      [join(work, "dir"), "dir", true, canonical],
      [join(work, "b.tar"), "tar", true, expected],
      [join(work, "b.tar.zst"), "tar.zst", false, expected],
      [join(work, "p.tar"), "parts", true, expected],
      [join(work, "p.tar.parts.json"), "parts", true, expected],
      [join(work, "p.tar.part-0001"), "parts", true, expected],
      [join(work, "pz.tar.zst"), "parts", false, expected],
    ];
    for (const [input, kind, seekable, want] of cases) {
      const r = await openBundle(input);
      expect([input, r.kind, r.seekable]).toEqual([input, kind, seekable]);
      expect(await readAll(r)).toEqual(want);
      await r.close();
    }
    for (const f of ["b.tar", "b.tar.zst"]) {
      const r = await openBundle("-", { stdin: createReadStream(join(work, f)) });
      expect(r.kind).toBe("stdin");
      expect(await readAll(r)).toEqual(expected);
    }
  });

  it("lists and opens files at random in seekable forms, across part boundaries", async () => {
    for (const input of ["dir", "b.tar", "p.tar"]) {
      const r = await openBundle(join(work, input));
      const list = await r.list();
      expect(list.map((e) => e.path).sort()).toEqual(files.map((f) => f.path).sort());
      for (const f of files) {
        const want = (f.source as { bytes: Buffer }).bytes;
        const chunks: Buffer[] = [];
        for await (const c of await r.open(f.path)) chunks.push(c as Buffer);
        expect(sha(Buffer.concat(chunks))).toBe(sha(want));
      }
      expect((await r.readSmall("index.json")).toString()).toBe('{"schemaVersion":2,"manifests":[]}');
      await expect(r.readSmall(files[5]!.path, 1000)).rejects.toMatchObject({ code: "MALFORMED" });
      await expect(r.open("blobs/sha256/nope")).rejects.toMatchObject({ code: "MISSING_FILE" });
      await r.close();
    }
    const z = await openBundle(join(work, "b.tar.zst"));
    await expect(z.list()).rejects.toThrow(/sequentially/);
  });

  it("skips the unread rest of an entry when the next one is asked for", async () => {
    const r = await openBundle(join(work, "b.tar.zst"));
    const paths: string[] = [];
    for await (const e of r.entries()) paths.push(e.path);
    expect(paths).toEqual(files.map((f) => f.path));
  });

  it("reads GNU and PAX long names written by GNU tar", async () => {
    const d = join(work, "long");
    const name = `${"n".repeat(150)}/${"m".repeat(120)}`;
    await mkdir(join(d, "n".repeat(150)), { recursive: true });
    await writeFile(join(d, name), "long");
    for (const format of ["gnu", "posix"]) {
      const t = join(work, `long-${format}.tar`);
      execFileSync("tar", [`--format=${format}`, "-cf", t, "-C", d, name]);
      const r = await openBundle(t);
      expect(await readAll(r)).toEqual([{ path: name, size: 4, sha256: sha(Buffer.from("long")) }]);
      expect((await r.readSmall(name)).toString()).toBe("long");
    }
  });

  it("reads a bundle that GNU tar packed from the directory form (./ prefixes)", async () => {
    const t = join(work, "gnu.tar");
    execFileSync("tar", ["-cf", t, "-C", join(work, "dir"), "."]);
    const r = await openBundle(t);
    expect((await readAll(r)).map((e) => e.path).sort()).toEqual(files.map((f) => f.path).sort());
  });
});

describe("openBundle refuses unsafe or damaged archives", () => {
  it("refuses a symbolic link", async () => {
    const d = join(work, "sym");
    await mkdir(d);
    await writeFile(join(d, "a"), "x");
    execFileSync("ln", ["-s", "/etc/passwd", join(d, "link")]);
    execFileSync("tar", ["-cf", join(work, "sym.tar"), "-C", d, "a", "link"]);
    const err = await refusal(join(work, "sym.tar"));
    expect(err.code).toBe("PATH_ESCAPE");
    expect(err.message).toContain("link");
    expect((await refusal(d)).code).toBe("PATH_ESCAPE");
  });

  it("refuses a hard link", async () => {
    const d = join(work, "hard");
    await mkdir(d);
    await writeFile(join(d, "a"), "x");
    execFileSync("ln", [join(d, "a"), join(d, "b")]);
    execFileSync("tar", ["-cf", join(work, "hard.tar"), "-C", d, "a", "b"]);
    const err = await refusal(join(work, "hard.tar"));
    expect(err.code).toBe("PATH_ESCAPE");
    expect(err.message).toContain('"b"');
  });

  it("refuses absolute paths and paths with ..", async () => {
    for (const path of ["/etc/cron.d/x", "blobs/../../x", "../x"]) {
      const f = join(work, "esc.tar");
      writeFileSync(
        f,
        rawTar([
          { path: "SHA256SUMS", body: Buffer.from("x") },
          { path, body: Buffer.from("evil") },
        ]),
      );
      const err = await refusal(f);
      expect(err.code).toBe("PATH_ESCAPE");
      expect(err.message).toContain(path);
    }
  });

  it("refuses devices and a file listed twice", async () => {
    const f = join(work, "dev.tar");
    writeFileSync(f, rawTar([{ path: "null", type: "CharacterDevice" }]));
    expect((await refusal(f)).code).toBe("PATH_ESCAPE");
    writeFileSync(
      f,
      rawTar([
        { path: "a", body: Buffer.from("1") },
        { path: "a", body: Buffer.from("2") },
      ]),
    );
    expect((await refusal(f)).message).toContain("twice");
  });

  it("refuses a truncated tar (mid-entry and without end blocks), plain and compressed", async () => {
    const whole = readFileSync(join(work, "b.tar"));
    const t = join(work, "trunc.tar");
    writeFileSync(t, whole.subarray(0, Math.floor((whole.length * 2) / 3)));
    expect((await refusal(t)).code).toBe("TRUNCATED");
    writeFileSync(t, rawTar([{ path: "a", body: Buffer.from("1") }], false));
    expect((await refusal(t)).code).toBe("TRUNCATED");
    const z = readFileSync(join(work, "b.tar.zst"));
    writeFileSync(join(work, "trunc.tar.zst"), z.subarray(0, Math.floor(z.length / 2)));
    expect((await refusal(join(work, "trunc.tar.zst"))).code).toBe("TRUNCATED");
    const r = await openBundle("-", { stdin: createReadStream(t) });
    await expect(readAll(r)).rejects.toMatchObject({ code: "TRUNCATED" });
  });

  it("reports truncation from the next entry when a body is only resumed", async () => {
    const whole = readFileSync(join(work, "b.tar"));
    const t = join(work, "trunc-resume.tar");
    writeFileSync(t, whole.subarray(0, 512 * 14));
    const r = await openBundle("-", { stdin: createReadStream(t) });
    const run = async () => {
      for await (const e of r.entries()) e.stream.resume();
    };
    await expect(run()).rejects.toMatchObject({ code: "TRUNCATED" });
  });

  it("refuses garbage and data after the end of the archive", async () => {
    const g = join(work, "garbage.tar");
    writeFileSync(g, randomBytes(20000));
    expect((await refusal(g)).code).toBe("MALFORMED");
    writeFileSync(g, Buffer.concat([readFileSync(join(work, "b.tar")), Buffer.from("smuggled")]));
    expect((await refusal(g)).code).toBe("MALFORMED");
  });

  it("names a missing or damaged part", async () => {
    const copy = (from: string, to: string) =>
      execFileSync("bash", [
        "-c",
        `for f in ${from}.part-* ${from}.parts.json; do cp "$f" "\${f/${from.split("/").pop()}/${to.split("/").pop()}}"; done`,
      ]);
    const base = join(work, "p.tar");
    const m = JSON.parse(readFileSync(`${base}.parts.json`, "utf8"));
    const d = join(work, "m.tar");
    copy(base, d);
    const mm = {
      ...m,
      file: "m.tar",
      parts: m.parts.map((p: { name: string }) => ({ ...p, name: p.name.replace("p.tar", "m.tar") })),
    };
    writeFileSync(`${d}.parts.json`, JSON.stringify(mm));
    unlinkSync(`${d}.part-0002`);
    let err = await refusal(d);
    expect([err.code, err.item]).toEqual(["TRUNCATED", "m.tar.part-0002"]);
    copy(base, d);
    writeFileSync(`${d}.parts.json`, JSON.stringify(mm));
    const p3 = readFileSync(`${d}.part-0003`);
    p3[100] = p3[100]! ^ 1;
    writeFileSync(`${d}.part-0003`, p3);
    err = await refusal(d);
    expect(err.message).toContain("m.tar.part-0003");
    truncateSync(`${d}.part-0003`, 10);
    err = await refusal(d);
    expect([err.code, err.item]).toEqual(["TRUNCATED", "m.tar.part-0003"]);
  });
});
