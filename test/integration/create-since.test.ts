/**
 * Incremental bundles: `create --since BASE` leaves out the layers and configs BASE carried; such a
 * bundle verifies on its own, and imports only into a target that already holds BASE.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import {
  closeFixtures,
  manifestDigest,
  type PushedImage,
  plainTarget,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";

const target = plainTarget();
const host = target.host;
const ns = uniqueRepo("since");
let work: string;
let base: PushedImage;
let grown: PushedImage;

function config(name: string, images: string[]): string {
  const file = join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: ${name}, version: 1.0.0 }
registries: [{ host: "${host}", plainHTTP: true }]
images:
${images.map((i) => `  - ref: ${host}/${ns}/${i}`).join("\n")}
`,
  );
  return file;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-since-"));
  base = await pushImage(target, `${ns}/app`, "1", { layerSizes: [500_000, 300_000] });
  // version 2 shares the base layers and adds one
  grown = await pushImage(target, `${ns}/app`, "2", { layerSizes: [70_000], sharedLayers: base.layers });
  const cache = join(work, "cache");
  expect(
    (
      await runCli([
        "bundle",
        "create",
        "-c",
        config("base", ["app:1"]),
        "-o",
        join(work, "base"),
        "--cache",
        cache,
      ])
    ).code,
  ).toBe(0);
  const r = await runCli([
    "bundle",
    "create",
    "-c",
    config("next", ["app:1", "app:2"]),
    "-o",
    join(work, "next.tar"),
    "--cache",
    cache,
    "--since",
    join(work, "base"),
  ]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await closeFixtures();
});

describe("create --since", () => {
  it("leaves out the layers the base carried and lists them in bundle.json", () => {
    const names = execFileSync("tar", ["-tf", join(work, "next.tar")], { encoding: "utf8" });
    for (const l of base.layers) expect(names).not.toContain(l.digest.slice(7));
    expect(names).toContain(grown.layers.at(-1)!.digest.slice(7));
    expect(names).toContain(grown.digest.slice(7));
    const x = join(work, "next-x");
    execFileSync("mkdir", ["-p", x]);
    execFileSync("tar", ["-xf", join(work, "next.tar"), "-C", x]);
    const inv = JSON.parse(readFileSync(join(x, "bundle.json"), "utf8")) as {
      since: { bundle: string; omittedBlobs: string[] };
    };
    expect(inv.since.bundle).toBe("base");
    expect(inv.since.omittedBlobs).toEqual(expect.arrayContaining(base.layers.map((l) => l.digest)));
    execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: x });
  });

  it("bundle diff names what the new bundle adds", async () => {
    const r = await runCli(["bundle", "diff", join(work, "base"), join(work, "next.tar"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as {
      added: { name: string }[];
      unchanged: string[];
      removed: unknown[];
      changed: unknown[];
    };
    expect(d.added.map((a) => a.name)).toEqual([`${host}/${ns}/app:2`]);
    expect(d.unchanged).toEqual([`${host}/${ns}/app:1`]);
    expect(d.removed).toEqual([]);
    expect(d.changed).toEqual([]);
    const human = await runCli(["bundle", "diff", join(work, "base"), join(work, "next.tar")]);
    expect(human.stdout).toContain(`+ image ${host}/${ns}/app:2`);
  });

  it("verifies on its own, from a file and from a pipe (left-out blobs are not dangling)", async () => {
    expect((await runCli(["bundle", "verify", join(work, "next.tar")])).code).toBe(0);
    const piped = await runCli(["bundle", "verify", "-"], { input: readFileSync(join(work, "next.tar")) });
    expect(piped.code, piped.stderr).toBe(0);
  });

  it("refuses to import into a target without the base, before pushing anything", async () => {
    const prefix = uniqueRepo("nobase");
    const r = await runCli([
      "bundle",
      "import",
      join(work, "next.tar"),
      "--registry",
      `${host}/${prefix}`,
      "--plain-http",
      "--out",
      join(work, "o1"),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("incremental");
    expect(r.stderr).toContain("base");
    expect(await manifestDigest(target, `${prefix}/${ns}/app`, "2")).toBeUndefined();
  });

  it("imports on top of the base, from a file and from a pipe", async () => {
    const prefix = uniqueRepo("withbase");
    const args = (input: string) => [
      "bundle",
      "import",
      input,
      "--registry",
      `${host}/${prefix}`,
      "--plain-http",
      "--out",
      join(work, "o2"),
    ];
    expect((await runCli(args(join(work, "base")))).code).toBe(0);
    const r = await runCli(args(join(work, "next.tar")));
    expect(r.code, r.stderr).toBe(0);
    expect(await manifestDigest(target, `${prefix}/${ns}/app`, "2")).toBe(grown.digest);
    const prefix2 = uniqueRepo("withbase-pipe");
    const args2 = (input: string) => [
      "bundle",
      "import",
      input,
      "--registry",
      `${host}/${prefix2}`,
      "--plain-http",
      "--out",
      join(work, "o3"),
    ];
    expect((await runCli(args2(join(work, "base")))).code).toBe(0);
    const p = await runCli(args2("-"), { input: readFileSync(join(work, "next.tar")) });
    expect(p.code, p.stderr).toBe(0);
    expect(await manifestDigest(target, `${prefix2}/${ns}/app`, "2")).toBe(grown.digest);
    expect(existsSync(join(work, "o3", "images.json"))).toBe(true);
  });
});
