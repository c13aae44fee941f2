/**
 * Command-line mistakes, each answered by the built CLI with the right exit code (2 for usage, 3
 * for a damaged bundle) and a message that says what was wrong and what is accepted: bad numbers,
 * unknown options and commands, missing arguments and files, unwritable outputs, compressed or
 * truncated input, split bundles missing a part or their manifest, a private key given as public.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";

let work: string;
const at = (...p: string[]) => path.join(work, ...p);
const COSIGN = { COSIGN_PASSWORD: "mistakes" };

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-mistakes-"));
  // a profile big enough that --split 1M makes three parts; no registry needed
  await mkdir(at("prof", "controls"), { recursive: true });
  await mkdir(at("prof", "files"), { recursive: true });
  await writeFile(at("prof", "inspec.yml"), "name: prof\nversion: 1.0.0\n");
  await writeFile(at("prof", "controls", "a.rb"), 'control "a" do\nend\n');
  // incompressible: the profile is packed as tar.gz
  const random = randomBytes(2_500_000);
  await writeFile(at("prof", "files", "big.bin"), random);
  const config =
    "apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: m, version: 1.0.0 }\nprofiles:\n  - path: prof\n";
  await writeFile(at("c.yaml"), config);
  await writeFile(
    at("rule.yaml"),
    `${config}verify:\n  - match: "docker.io/x/*"\n    key: keys/missing.pub\n`,
  );
  const gen = await runCli(["key", "generate", "--output-prefix", at("cosign")], { env: COSIGN });
  expect(gen.code, gen.stderr).toBe(0);
  for (const [out, extra] of [
    ["b.tar", []],
    ["s.tar", ["--split", "1M"]],
  ] as const) {
    const r = await runCli(
      [
        "bundle",
        "create",
        "-c",
        at("c.yaml"),
        "-o",
        at(out),
        "--key",
        at("cosign.key"),
        "--cache",
        at("cache"),
        ...extra,
      ],
      { env: COSIGN },
    );
    expect(r.code, r.stderr).toBe(0);
  }
  const tar = await readFile(at("b.tar"));
  await writeFile(at("half.tar"), tar.subarray(0, Math.floor(tar.length / 2)));
  await writeFile(at("b.tar.gz"), gzipSync(tar));
  execFileSync("bzip2", ["-k", "-f", at("b.tar")]);
  execFileSync("xz", ["-k", "-f", at("b.tar")]);
  await mkdir(at("missing-part"));
  await mkdir(at("lost-manifest"));
  for (const f of ["s.tar.part-0001", "s.tar.part-0003", "s.tar.parts.json"])
    await copyFile(at(f), at("missing-part", f));
  for (const f of ["s.tar.part-0001", "s.tar.part-0002", "s.tar.part-0003"])
    await copyFile(at(f), at("lost-manifest", f));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Mistake {
  name: string;
  args: () => string[];
  code: number;
  message: RegExp;
  /** Usage errors are one line; verify reports add a FAIL line and a summary. */
  oneLine?: boolean;
  not?: RegExp;
}

const create = (...extra: string[]) => [
  "bundle",
  "create",
  "-c",
  at("c.yaml"),
  "--cache",
  at("cache"),
  ...extra,
];

const MISTAKES: Mistake[] = [
  ...["0", "abc", "-1", "1.5"].map((n) => ({
    name: `--concurrency ${n}`,
    args: () => create("--concurrency", n, "--dry-run"),
    code: 2,
    message: new RegExp(
      `--concurrency <n>' argument '${n.replace(".", "\\.")}' is invalid\\. Expected a whole number from 1 to 1024`,
    ),
    oneLine: true,
  })),
  {
    name: "unknown option",
    args: () => ["bundle", "verify", at("b.tar"), "--bogus"],
    code: 2,
    message: /unknown option '--bogus' for airgap bundle verify; it accepts --key, --require-signature/,
    oneLine: true,
  },
  {
    name: "unknown subcommand",
    args: () => ["bundle", "nope"],
    code: 2,
    message:
      /unknown command 'nope' for airgap bundle; the commands are create, verify, inspect, import, report, diff, serve/,
    oneLine: true,
  },
  {
    name: "missing argument",
    args: () => ["bundle", "verify"],
    code: 2,
    message: /missing required argument 'bundle'; usage: airgap bundle verify \[options\] <bundle>/,
    oneLine: true,
  },
  {
    name: "missing --registry",
    args: () => ["bundle", "import", at("b.tar")],
    code: 2,
    message: /airgap bundle import needs --registry <target>: HOST\[:PORT\]\[\/PREFIX\]/,
    oneLine: true,
  },
  {
    name: "bad --compress",
    args: () => create("-o", at("o.tar"), "--compress", "gz"),
    code: 2,
    message: /argument 'gz' is invalid\. Allowed choices are zstd, none/,
    oneLine: true,
  },
  {
    name: "bare airgap bundle",
    args: () => ["bundle"],
    code: 2,
    message: /airgap bundle needs a command: create, verify, inspect, import, report, diff, serve/,
    oneLine: true,
  },
  {
    name: "--split 1",
    args: () => create("-o", at("tiny.tar"), "--split", "1"),
    code: 2,
    message: /--split 1 is 1 byte; parts must be at least 1 MiB/,
    oneLine: true,
  },
  {
    name: "missing --key and --ca-file, in --dry-run too",
    args: () => create("--dry-run", "--key", at("nope.key"), "--ca-file", at("nope-ca.pem")),
    code: 2,
    message:
      /cannot read the signing key \(--key\) .*nope\.key: no such file; cannot read the CA certificate \(--ca-file\) .*nope-ca\.pem: no such file/,
    oneLine: true,
  },
  {
    name: "missing verify-rule key in the config",
    args: () => ["bundle", "create", "-c", at("rule.yaml"), "--dry-run", "--cache", at("cache")],
    code: 2,
    message:
      /cannot read the public key of verify rule "docker\.io\/x\/\*" .*keys\/missing\.pub: no such file/,
    oneLine: true,
  },
  {
    name: "missing verify --key",
    args: () => ["bundle", "verify", at("b.tar"), "--key", at("nope.pub")],
    code: 2,
    message: /cannot read the public key \(--key\) .*nope\.pub: no such file/,
    oneLine: true,
  },
  {
    name: "unwritable output",
    args: () => create("-o", "/proc/airgap-x.tar"),
    code: 2,
    message: /the output \/proc\/airgap-x\.tar cannot be written: the folder \/proc is not writable/,
    oneLine: true,
  },
  {
    name: "gzip-compressed tar",
    args: () => ["bundle", "verify", at("b.tar.gz")],
    code: 2,
    message: /b\.tar\.gz is gzip-compressed; .*decompress it first \(gunzip\)/,
    oneLine: true,
  },
  {
    name: "bzip2-compressed tar",
    args: () => ["bundle", "inspect", at("b.tar.bz2")],
    code: 2,
    message: /b\.tar\.bz2 is bzip2-compressed; .*\(bunzip2\)/,
    oneLine: true,
  },
  {
    name: "xz-compressed tar",
    args: () => ["bundle", "import", at("b.tar.xz"), "--registry", "127.0.0.1:9", "--dry-run"],
    code: 2,
    message: /b\.tar\.xz is xz-compressed; .*\(unxz\)/,
    oneLine: true,
  },
  {
    name: "truncated signed bundle",
    args: () => ["bundle", "verify", at("half.tar"), "--key", at("cosign.pub")],
    code: 3,
    message: /half\.tar is truncated[\s\S]*signature not checked \(the bundle could not be read\)/,
    not: /no signature/,
  },
  {
    name: "split bundle missing a part",
    args: () => ["bundle", "verify", at("missing-part", "s.tar"), "--key", at("cosign.pub")],
    code: 3,
    message: /part s\.tar\.part-0002 is missing \(listed in s\.tar\.parts\.json\)/,
    not: /no signature/,
  },
  {
    name: "split bundle whose parts manifest was lost",
    args: () => ["bundle", "verify", at("lost-manifest", "s.tar")],
    code: 2,
    message:
      /parts manifest s\.tar\.parts\.json is missing, but its parts are there: pass .*s\.tar\.part-0001/,
    oneLine: true,
  },
  {
    name: "private key given to verify --key",
    args: () => ["bundle", "verify", at("b.tar"), "--key", at("cosign.key")],
    code: 2,
    message: /cosign\.key is a private key; pass the public key \(cosign\.pub\) instead/,
    oneLine: true,
  },
  {
    name: "http:// in --registry",
    args: () => ["bundle", "import", at("b.tar"), "--registry", "http://127.0.0.1:5000", "--dry-run"],
    code: 2,
    message: /without "http:\/\/" \(for a plain-HTTP registry pass --plain-http\)/,
    oneLine: true,
  },
  {
    name: "plain-HTTP registry without --plain-http",
    args: () => [
      "bundle",
      "import",
      at("b.tar"),
      "--registry",
      needEnv("AIRGAP_TEST_REGISTRY_PLAIN"),
      "--dry-run",
    ],
    code: 1,
    message: /does not speak TLS.*for the target registry pass --plain-http/,
    oneLine: true,
  },
];

describe("command-line mistakes", () => {
  it.each(MISTAKES)("$name → exit $code, a clear message", async (m) => {
    const r = await runCli(m.args(), { cwd: work, killAfterMs: 60_000 });
    expect(r.code, r.stderr).toBe(m.code);
    expect(r.stderr).toMatch(m.message);
    if (m.not) expect(r.stderr).not.toMatch(m.not);
    if (m.oneLine) expect(r.stderr.trimEnd().split("\n"), r.stderr).toHaveLength(1);
    expect(r.stdout).toBe("");
  });

  it("a config with several problems lists each on a line of its own, in --json as details", async () => {
    await writeFile(
      at("bad.yaml"),
      'apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: m, version: 1.0.0 }\nimages:\n  - ref: "not a ref"\n  - reff: x\n',
    );
    const args = ["bundle", "create", "-c", at("bad.yaml"), "--dry-run", "--offline"];
    const r = await runCli(args, { cwd: work });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).not.toContain("\\n");
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      expect.stringMatching(/^airgap: 2 problems in .*bad\.yaml:$/),
      expect.stringMatching(/^ {2}.*bad\.yaml:5:\d+: images\[0\]\.ref: invalid image reference "not a ref"/),
      expect.stringMatching(
        /^ {2}.*bad\.yaml:6:\d+: images\[1\]\.reff: unknown key "reff" \(did you mean "ref"\?\)$/,
      ),
    ]);
    const j = await runCli([...args, "--json"], { cwd: work });
    expect(j.code).toBe(2);
    const out = JSON.parse(j.stdout) as { code: string; details: string[] };
    expect(out.code).toBe("CONFIG");
    expect(out.details).toHaveLength(2);
    expect(out.details[1]).toMatch(/bad\.yaml:6:\d+: images\[1\]\.reff/);
  });

  it("left no output or temporary file behind", async () => {
    const names = await readdir(work);
    expect(names.filter((n) => /partial|^o\.tar|^tiny\.tar/.test(n))).toEqual([]);
    await expect(stat("/proc/airgap-x.tar")).rejects.toThrow();
  });
});
