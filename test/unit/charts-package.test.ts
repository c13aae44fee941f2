/**
 * Packaging chart folders as `helm dependency build` + `helm package` would: layout under NAME/,
 * file:// dependencies built first into charts/DEP-VERSION.tgz, .helmignore, reproducible bytes, and
 * refusal of cycles, escapes and folders that are not charts.
 */

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import * as tar from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeOf } from "../../src/errors.js";
import { type PackageContext, packageChartDir } from "../../src/sources/charts/package.js";
import { minimalChart, scannerChartFiles, writeTree } from "../helpers/charts.js";

const run = promisify(execFile);
let root: string;

interface Listed {
  path: string;
  type: string;
  mode: number;
  mtime: number;
  /** "none" when the header leaves the owner out (node-tar's portable mode; tar reads it as 0/0). */
  uid: number | "none";
  gid: number | "none";
  uname: string;
  data: Buffer;
}

async function list(source: string | Buffer): Promise<Listed[]> {
  const out: Listed[] = [];
  const parser = new tar.Parser({
    onReadEntry: (e) => {
      const chunks: Buffer[] = [];
      e.on("data", (c: Buffer) => chunks.push(c));
      e.on("end", () =>
        out.push({
          path: e.path,
          type: e.type,
          mode: e.mode ?? -1,
          mtime: e.mtime?.getTime() ?? -1,
          uid: e.uid ?? "none",
          gid: e.gid ?? "none",
          uname: e.uname ?? "",
          data: Buffer.concat(chunks),
        }),
      );
    },
  });
  const input =
    typeof source === "string" ? Readable.from([await readFile(source)]) : Readable.from([source]);
  await pipeline(input, parser);
  return out;
}

function ctx(boundary: string, extra: Partial<PackageContext> = {}): PackageContext {
  return {
    boundary,
    boundaryName: "the test folder",
    outDir: boundary,
    fetchRepo: async (dep) => {
      throw new Error(`unexpected repository fetch of ${dep.name}`);
    },
    ...extra,
  };
}

async function fresh(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(root, "case-"));
  await writeTree(dir, files);
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "airgap-charts-unit-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("packaging a chart folder", () => {
  it("builds file:// dependencies first, recursively, and nests them as charts/DEP-VERSION.tgz", async () => {
    const dir = await fresh(scannerChartFiles());
    const built: string[] = [];
    const out = await packageChartDir(path.join(dir, "helm-charts/standard-scanner"), ctx(dir, { built }));
    expect(built).toEqual(["scanner-infrastructure-0.1.0", "common-scanner-0.1.0", "standard-scanner-0.1.0"]);
    expect(out.name).toBe("standard-scanner");
    expect(path.basename(out.file)).toBe("standard-scanner-0.1.0.tgz");
    expect(out.dependencies).toMatchObject([
      {
        name: "common-scanner",
        version: "0.1.0",
        key: "common-scanner",
        repository: "file://../common-scanner",
        dependencies: [{ name: "scanner-infrastructure", version: "0.1.0", dependencies: [] }],
      },
    ]);

    const entries = await list(out.file);
    expect(entries.map((e) => e.path)).toEqual([
      "standard-scanner/Chart.yaml",
      "standard-scanner/values.yaml",
      "standard-scanner/.helmignore",
      "standard-scanner/README.md",
      "standard-scanner/charts/common-scanner-0.1.0.tgz",
      "standard-scanner/templates/NOTES.txt",
      "standard-scanner/templates/test-pod.yaml",
    ]);
    for (const e of entries) {
      expect(e).toMatchObject({ type: "File", mode: 0o644, mtime: 0, uid: "none", gid: "none", uname: "" });
    }
    const chartYaml = entries.find((e) => e.path === "standard-scanner/Chart.yaml")!;
    expect(chartYaml.data.toString()).toBe(
      await readFile(path.join(dir, "helm-charts/standard-scanner/Chart.yaml"), "utf8"),
    );
    const common = await list(entries.find((e) => e.path.endsWith("common-scanner-0.1.0.tgz"))!.data);
    expect(common.map((e) => e.path)).toEqual([
      "common-scanner/Chart.yaml",
      "common-scanner/values.yaml",
      "common-scanner/charts/scanner-infrastructure-0.1.0.tgz",
      "common-scanner/templates/configmap-scripts.yaml",
    ]);
    const infra = await list(common.find((e) => e.path.endsWith(".tgz"))!.data);
    expect(infra.map((e) => e.path)).toEqual([
      "scanner-infrastructure/Chart.yaml",
      "scanner-infrastructure/values.yaml",
      "scanner-infrastructure/templates/namespace.yaml",
    ]);
  });

  it("gives byte-identical archives on every run, with a gzip header without a timestamp", async () => {
    const a = await fresh(scannerChartFiles());
    const b = await fresh(scannerChartFiles());
    const first = await packageChartDir(path.join(a, "helm-charts/sidecar-scanner"), ctx(a));
    const second = await packageChartDir(path.join(b, "helm-charts/sidecar-scanner"), ctx(b));
    const again = await packageChartDir(path.join(a, "helm-charts/sidecar-scanner"), ctx(a));
    const bytes = await readFile(first.file);
    expect(await readFile(second.file)).toEqual(bytes);
    expect(await readFile(again.file)).toEqual(bytes);
    expect(first.sha256).toBe(second.sha256);
    expect(first.size).toBe(bytes.length);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(bytes.readUInt32LE(4)).toBe(0);
  });

  it("is read by GNU tar and gzip as a plain, owner-less, 1970-dated archive", async () => {
    const dir = await fresh(scannerChartFiles());
    const out = await packageChartDir(path.join(dir, "helm-charts/common-scanner"), ctx(dir));
    await run("gzip", ["-t", out.file]);
    const { stdout } = await run("tar", ["-tvzf", out.file], {
      env: { ...process.env, TZ: "UTC", LC_ALL: "C" },
    });
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => l.replace(/\s+/g, " "));
    expect(lines).toEqual([
      expect.stringMatching(/^-rw-r--r-- 0\/0 \d+ 1970-01-01 00:00 common-scanner\/Chart\.yaml$/),
      expect.stringMatching(/^-rw-r--r-- 0\/0 \d+ 1970-01-01 00:00 common-scanner\/values\.yaml$/),
      expect.stringMatching(/ common-scanner\/charts\/scanner-infrastructure-0\.1\.0\.tgz$/),
      expect.stringMatching(/ common-scanner\/templates\/configmap-scripts\.yaml$/),
    ]);
  });

  it("names the top folder after Chart.yaml's name, not the folder's", async () => {
    const dir = await fresh({
      "src/chart/Chart.yaml": minimalChart("renamed", "2.0.0"),
      "src/chart/values.yaml": "",
    });
    const out = await packageChartDir(path.join(dir, "src/chart"), ctx(dir));
    expect((await list(out.file)).map((e) => e.path)).toEqual(["renamed/Chart.yaml", "renamed/values.yaml"]);
    expect(path.basename(out.file)).toBe("renamed-2.0.0.tgz");
  });

  it("honours .helmignore with Helm's rules and always drops dot files in templates/", async () => {
    const dir = await fresh({
      "c/Chart.yaml": minimalChart("c"),
      "c/.helmignore": [
        "# comment",
        "*.bak",
        "/top-only.txt",
        "docs/",
        "ci/*.yaml",
        "temp?",
        "*.[oa]",
        "  spaced.txt  ",
      ].join("\n"),
      "c/values.yaml": "a: 1\n",
      "c/keep.txt": "k",
      "c/values.yaml.bak": "x",
      "c/templates/x.bak": "x",
      "c/top-only.txt": "x",
      "c/templates/top-only.txt": "kept: anchored rules match at the root only",
      "c/docs/guide.md": "x",
      "c/templates/docs": "kept: docs/ matches folders only",
      "c/ci/test.yaml": "x",
      "c/ci/keep.txt": "k",
      "c/temp1": "x",
      "c/temp12": "kept: ? is one character",
      "c/lib.o": "x",
      "c/lib.c": "k",
      "c/spaced.txt": "x",
      "c/templates/.hidden.yaml": "x",
      "c/templates/deploy.yaml": "k",
    });
    const out = await packageChartDir(path.join(dir, "c"), ctx(dir));
    expect((await list(out.file)).map((e) => e.path.slice(2))).toEqual([
      "Chart.yaml",
      "values.yaml",
      ".helmignore",
      "ci/keep.txt",
      "keep.txt",
      "lib.c",
      "temp12",
      "templates/deploy.yaml",
      "templates/docs",
      "templates/top-only.txt",
    ]);
  });

  it("refuses a .helmignore with ** as Helm does", async () => {
    const dir = await fresh({ "c/Chart.yaml": minimalChart("c"), "c/.helmignore": "keep\n**/x\n" });
    await expect(packageChartDir(path.join(dir, "c"), ctx(dir))).rejects.toThrow(
      /c\/\.helmignore:2: double-star \(\*\*\) syntax is not supported/,
    );
  });

  it("refuses a values.schema.json that is not JSON, as helm package does", async () => {
    const dir = await fresh({ "c/Chart.yaml": minimalChart("c"), "c/values.schema.json": "{ nope" });
    await expect(packageChartDir(path.join(dir, "c"), ctx(dir))).rejects.toThrow(
      "c/values.schema.json is not valid JSON",
    );
  });

  it("refuses a folder without Chart.yaml, naming it", async () => {
    const dir = await fresh({ "notachart/values.yaml": "a: 1\n" });
    const err = await packageChartDir(path.join(dir, "notachart"), ctx(dir)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^notachart is not a Helm chart: it has no Chart\.yaml/);
    expect((err as { code: string }).code).toBe("CHART_NOT_FOUND");
  });

  it("refuses a dependency cycle and shows the chain", async () => {
    const dir = await fresh({
      "a/Chart.yaml": minimalChart("a", "1.0.0", [{ name: "b", repository: "file://../b" }]),
      "b/Chart.yaml": minimalChart("b", "1.0.0", [{ name: "c", repository: "file://../c" }]),
      "c/Chart.yaml": minimalChart("c", "1.0.0", [{ name: "a", repository: "file://../a" }]),
    });
    const err = await packageChartDir(path.join(dir, "a"), ctx(dir)).catch((e: unknown) => e);
    expect((err as Error).message).toBe("chart dependencies form a cycle: a -> b -> c -> a");
    expect((err as { code: string }).code).toBe("CHART_CYCLE");
  });

  it("refuses a file:// dependency outside the boundary with an integrity error (exit 3)", async () => {
    const outside = await fresh({ "evil/Chart.yaml": minimalChart("evil") });
    const dir = await fresh({
      "repo/app/Chart.yaml": minimalChart("app", "1.0.0", [
        { name: "evil", repository: `file://../../${path.basename(outside)}/evil` },
      ]),
    });
    const err = await packageChartDir(path.join(dir, "repo/app"), ctx(path.join(dir, "repo"))).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe(
      `app/Chart.yaml: dependency evil (file://../../${path.basename(outside)}/evil) is outside the test folder; refusing to package it`,
    );
    expect(exitCodeOf(err)).toBe(3);
  });

  it("refuses a symbolic link that leads out of the boundary", async () => {
    const dir = await fresh({ "c/Chart.yaml": minimalChart("c") });
    await writeFile(path.join(root, "secret.txt"), "secret");
    await symlink(path.join(root, "secret.txt"), path.join(dir, "c/leak.txt"));
    const err = await packageChartDir(path.join(dir, "c"), ctx(dir)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /c\/leak\.txt is a symbolic link to .*secret\.txt, outside the test folder/,
    );
    expect(exitCodeOf(err)).toBe(3);
  });

  it("follows a symbolic link that stays inside, as Helm does", async () => {
    const dir = await fresh({ "c/Chart.yaml": minimalChart("c"), "shared/_helpers.tpl": "{{/* x */}}\n" });
    await symlink(path.join(dir, "shared/_helpers.tpl"), path.join(dir, "c/_helpers.tpl"));
    const out = await packageChartDir(path.join(dir, "c"), ctx(dir));
    const entries = await list(out.file);
    expect(entries.find((e) => e.path === "c/_helpers.tpl")?.data.toString()).toBe("{{/* x */}}\n");
  });

  it("refuses a file:// dependency whose version does not satisfy the constraint", async () => {
    const dir = await fresh({
      "app/Chart.yaml": minimalChart("app", "1.0.0", [
        { name: "lib", version: "^2.0.0", repository: "file://../lib" },
      ]),
      "lib/Chart.yaml": minimalChart("lib", "1.4.0"),
    });
    await expect(packageChartDir(path.join(dir, "app"), ctx(dir))).rejects.toThrow(
      "app/Chart.yaml: dependency lib wants version ^2.0.0, but file://../lib holds 1.4.0",
    );
  });

  it("reads an apiVersion v1 chart's dependencies from requirements.yaml", async () => {
    const dir = await fresh({
      "old/Chart.yaml": "apiVersion: v1\nname: old\nversion: 1.0.0\n",
      "old/requirements.yaml":
        "dependencies:\n  - name: lib\n    version: ~1.0\n    repository: file://../lib\n",
      "lib/Chart.yaml": minimalChart("lib", "1.0.3"),
    });
    const out = await packageChartDir(path.join(dir, "old"), ctx(dir));
    expect((await list(out.file)).map((e) => e.path)).toEqual([
      "old/Chart.yaml",
      "old/charts/lib-1.0.3.tgz",
      "old/requirements.yaml",
    ]);
  });

  it("carries a chart used under two aliases once, recording both keys", async () => {
    const dir = await fresh({
      "app/Chart.yaml": minimalChart("app", "1.0.0", [
        { name: "lib", repository: "file://../lib", alias: "first" },
        { name: "lib", repository: "file://../lib", alias: "second" },
      ]),
      "lib/Chart.yaml": minimalChart("lib", "1.0.0"),
    });
    const built: string[] = [];
    const out = await packageChartDir(path.join(dir, "app"), ctx(dir, { built }));
    expect(built).toEqual(["lib-1.0.0", "app-1.0.0"]);
    expect(out.dependencies.map((d) => [d.name, d.key])).toEqual([
      ["lib", "first"],
      ["lib", "second"],
    ]);
    expect((await list(out.file)).map((e) => e.path)).toEqual(["app/Chart.yaml", "app/charts/lib-1.0.0.tgz"]);
  });

  it("replaces a stale vendored copy of a dependency in charts/", async () => {
    const dir = await fresh({
      "app/Chart.yaml": minimalChart("app", "1.0.0", [{ name: "lib", repository: "file://../lib" }]),
      "app/charts/lib-0.9.0.tgz": "stale",
      "app/charts/other-1.0.0.tgz": "vendored",
      "lib/Chart.yaml": minimalChart("lib", "1.0.0"),
    });
    const out = await packageChartDir(path.join(dir, "app"), ctx(dir));
    expect((await list(out.file)).map((e) => e.path)).toEqual([
      "app/Chart.yaml",
      "app/charts/lib-1.0.0.tgz",
      "app/charts/other-1.0.0.tgz",
    ]);
  });

  it("refuses an oci:// dependency when no registry client is given, and uses it when it is", async () => {
    const dir = await fresh({
      "app/Chart.yaml": minimalChart("app", "1.0.0", [
        { name: "lib", version: "1.x", repository: "oci://r.example/charts" },
      ]),
      "lib/Chart.yaml": minimalChart("lib", "1.2.0"),
    });
    await expect(packageChartDir(path.join(dir, "app"), ctx(dir))).rejects.toThrow(
      "app/Chart.yaml: dependency lib comes from oci://r.example/charts, and no OCI registry client was given to pull it",
    );
    const lib = await packageChartDir(path.join(dir, "lib"), ctx(dir));
    const seen: string[] = [];
    const out = await packageChartDir(
      path.join(dir, "app"),
      ctx(dir, {
        pullOci: async (dep) => {
          seen.push(`${dep.repository} ${dep.name} ${dep.version}`);
          return { file: lib.file, name: lib.name, version: lib.version, sha256: lib.sha256 };
        },
      }),
    );
    expect(seen).toEqual(["oci://r.example/charts lib 1.x"]);
    expect((await list(out.file)).map((e) => e.path)).toContain("app/charts/lib-1.2.0.tgz");
  });
});
