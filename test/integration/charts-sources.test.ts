/**
 * Chart sources against the real servers: the kube-secure-scanner layout in a git repository served
 * over HTTP (five charts chained by file:// dependencies), a Helm repository (index.yaml + .tgz)
 * served by nginx, and a chart folder next to the config file.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeOf, IntegrityError } from "../../src/errors.js";
import { readChartArchive } from "../../src/sources/charts/archive.js";
import { helmRepositoryIndex, resolveChart } from "../../src/sources/charts/index.js";
import { packageChartDir } from "../../src/sources/charts/package.js";
import { minimalChart, scannerChartFiles, writeTree } from "../helpers/charts.js";
import { needEnv } from "../helpers/env.js";
import { makeGitRepo, type TestGitRepo } from "../helpers/git.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
let work: string;
let repo: TestGitRepo;
let helmRoot: string;
let helmUrl: string;

/** Files of a .tgz, nested archives listed as "outer.tgz!inner/path". */
async function listing(file: string | Buffer, label = "x"): Promise<string[]> {
  const tar = await import("tar");
  const { Readable } = await import("node:stream");
  const { pipeline } = await import("node:stream/promises");
  const out: string[] = [];
  const nested: [string, Buffer][] = [];
  const parser = new tar.Parser({
    onReadEntry: (e) => {
      const chunks: Buffer[] = [];
      e.on("data", (c: Buffer) => chunks.push(c));
      e.on("end", () => {
        out.push(e.path);
        if (e.path.endsWith(".tgz")) nested.push([e.path, Buffer.concat(chunks)]);
      });
    },
  });
  await pipeline(Readable.from([typeof file === "string" ? await readFile(file) : file]), parser);
  for (const [p, data] of nested) out.push(...(await listing(data, label)).map((n) => `${p}!${n}`));
  return out;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-charts-it-"));
  repo = await makeGitRepo(`kube-secure-scanner-${uid}`, [
    { files: scannerChartFiles(), tags: ["v0.1.0"] },
    {
      files: {
        ...scannerChartFiles(),
        "helm-charts/escape/Chart.yaml": minimalChart("escape", "0.1.0", [
          { name: "outside", repository: "file://../../../outside" },
        ]),
      },
    },
  ]);

  // a Helm repository: charts packaged here, index.yaml written by helmRepositoryIndex
  helmRoot = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `helm-${uid}`);
  helmUrl = `${needEnv("AIRGAP_TEST_HTTP_URL")}/helm-${uid}`;
  await mkdir(path.join(helmRoot, "pkgs"), { recursive: true });
  const src = path.join(work, "helm-src");
  const charts = [];
  for (const version of ["0.1.0", "0.2.0", "0.2.1-rc.1", "1.0.0"]) {
    const dir = path.join(src, `lib-${version}`);
    await writeTree(dir, {
      "Chart.yaml": `${minimalChart("lib", version)}appVersion: "${version}"\n`,
      "values.yaml": `image:\n  repository: org/lib\n  tag: "${version}"\n`,
    });
    const p = await packageChartDir(dir, {
      boundary: src,
      boundaryName: "src",
      outDir: work,
      fetchRepo: async () => {
        throw new Error("none");
      },
    });
    // 1.0.0 is listed under an absolute URL, the others relative to the repository
    const rel = `pkgs/lib-${version}.tgz`;
    await writeFile(path.join(helmRoot, rel), await readFile(p.file));
    charts.push({
      name: "lib",
      version,
      sha256: p.sha256,
      url: version === "1.0.0" ? `${helmUrl}/${rel}` : rel,
      chartYamlJson: p.metadata.raw,
    });
  }
  // a chart whose index digest does not match its bytes
  const bad = path.join(src, "tampered");
  await writeTree(bad, { "Chart.yaml": minimalChart("tampered", "1.0.0") });
  const tp = await packageChartDir(bad, {
    boundary: src,
    boundaryName: "src",
    outDir: work,
    fetchRepo: async () => {
      throw new Error("none");
    },
  });
  const tbytes = await readFile(tp.file);
  charts.push({
    name: "tampered",
    version: "1.0.0",
    sha256: tp.sha256,
    url: "tampered-1.0.0.tgz",
    chartYamlJson: tp.metadata.raw,
  });
  const flipped = Buffer.from(tbytes);
  flipped[flipped.length - 10]! ^= 0xff;
  await writeFile(path.join(helmRoot, "tampered-1.0.0.tgz"), flipped);
  await writeFile(
    path.join(helmRoot, "index.yaml"),
    helmRepositoryIndex(charts, new Date("2026-11-30T00:00:00Z")),
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(helmRoot, { recursive: true, force: true });
});

describe("charts from git (the kube-secure-scanner layout)", () => {
  it("packages standard-scanner with its file:// chain, pinned to the commit, and finds its images", async () => {
    const r = await resolveChart(
      { type: "git", git: repo.url, ref: "v0.1.0", path: "helm-charts/standard-scanner", images: "auto" },
      { workDir: path.join(work, "git-a"), configDir: work },
    );
    expect(r).toMatchObject({
      name: "standard-scanner",
      version: "0.1.0",
      source: `${repo.url}@v0.1.0:helm-charts/standard-scanner`,
      pinned: { git: repo.url, commit: repo.commits[0], path: "helm-charts/standard-scanner" },
      warnings: [expect.stringContaining("testPod.image names docker.io/library/busybox:latest")],
    });
    const bytes = await readFile(r.file);
    expect(r.sha256).toBe(sha256(bytes));
    expect(r.size).toBe(bytes.length);
    expect(await listing(r.file)).toEqual([
      "standard-scanner/Chart.yaml",
      "standard-scanner/values.yaml",
      "standard-scanner/.helmignore",
      "standard-scanner/README.md",
      "standard-scanner/charts/common-scanner-0.1.0.tgz",
      "standard-scanner/templates/NOTES.txt",
      "standard-scanner/templates/test-pod.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/Chart.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/values.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/charts/scanner-infrastructure-0.1.0.tgz",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/templates/configmap-scripts.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/charts/scanner-infrastructure-0.1.0.tgz!scanner-infrastructure/Chart.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/charts/scanner-infrastructure-0.1.0.tgz!scanner-infrastructure/values.yaml",
      "standard-scanner/charts/common-scanner-0.1.0.tgz!common-scanner/charts/scanner-infrastructure-0.1.0.tgz!scanner-infrastructure/templates/namespace.yaml",
    ]);
    expect(r.images.map((i) => [i.chartPath.join("/"), i.valuesPath.join("."), i.ref, i.latest])).toEqual([
      ["standard-scanner", "testPod.image", "docker.io/library/busybox:latest", true],
    ]);
    expect(r.dependencies.map((d) => [d.name, d.dependencies.map((x) => x.name)])).toEqual([
      ["common-scanner", ["scanner-infrastructure"]],
    ]);
    expect(r.metadata).toMatchObject({ name: "standard-scanner", appVersion: "1.0.0" });
  });

  it("gives the same bytes for the same commit on another run, and for every scanner chart", async () => {
    const again = async (chart: string, dir: string) =>
      await resolveChart(
        { type: "git", git: repo.url, ref: "main", path: `helm-charts/${chart}`, images: "auto" },
        { workDir: path.join(work, dir), configDir: work },
      );
    const a = await again("standard-scanner", "git-b");
    const b = await again("standard-scanner", "git-c");
    expect(b.sha256).toBe(a.sha256);
    expect(await readFile(b.file)).toEqual(await readFile(a.file));
    expect(a.pinned.commit).toBe(repo.commits[1]);

    const sidecar = await again("sidecar-scanner", "git-d");
    expect(sidecar.images.map((i) => i.ref)).toEqual([
      "docker.io/library/busybox:latest",
      "docker.io/cincproject/auditor:latest",
    ]);
    const distroless = await again("distroless-scanner", "git-e");
    expect(distroless.images.map((i) => i.ref)).toEqual([
      "ghcr.io/distroless/static:nonroot",
      "docker.io/library/busybox:1.37",
    ]);
    expect(distroless.warnings).toEqual([]);
  });

  it("refuses a file:// dependency that leaves the repository (exit 3)", async () => {
    const err = await resolveChart(
      { type: "git", git: repo.url, ref: "main", path: "helm-charts/escape", images: "auto" },
      { workDir: path.join(work, "git-f"), configDir: work },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(exitCodeOf(err)).toBe(3);
    expect((err as Error).message).toBe(
      `${repo.url}@${repo.commits[1]!.slice(0, 12)}:helm-charts/escape/Chart.yaml: dependency outside (file://../../../outside) is outside the repository ${repo.url}; refusing to package it`,
    );
  });

  it("names a chart path without Chart.yaml", async () => {
    const err = await resolveChart(
      { type: "git", git: repo.url, ref: "main", path: "helm-charts", images: "auto" },
      { workDir: path.join(work, "git-g"), configDir: work },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/:helm-charts is not a Helm chart: it has no Chart\.yaml/);
  });
});

describe("charts from a Helm repository", () => {
  it("takes the highest version in the range, resolving a relative URL against the repository", async () => {
    const r = await resolveChart(
      { type: "repo", repo: helmUrl, name: "lib", version: "^0.1.0 || ~0.2" },
      { workDir: path.join(work, "repo-a"), configDir: work },
    );
    expect(r).toMatchObject({
      name: "lib",
      version: "0.2.0",
      pinned: { repo: helmUrl, url: `${helmUrl}/pkgs/lib-0.2.0.tgz`, digest: `sha256:${r.sha256}` },
      images: [],
    });
    expect(sha256(await readFile(r.file))).toBe(r.sha256);
    expect(sha256(await readFile(path.join(helmRoot, "pkgs/lib-0.2.0.tgz")))).toBe(r.sha256);
  });

  it("takes an exact version, including a prerelease, and follows an absolute URL", async () => {
    const rc = await resolveChart(
      { type: "repo", repo: `${helmUrl}/`, name: "lib", version: "0.2.1-rc.1" },
      { workDir: path.join(work, "repo-b"), configDir: work },
    );
    expect(rc.version).toBe("0.2.1-rc.1");
    const one = await resolveChart(
      { type: "repo", repo: helmUrl, name: "lib", version: ">=1.0.0, <2" },
      { workDir: path.join(work, "repo-c"), configDir: work },
    );
    expect(one.version).toBe("1.0.0");
    expect(one.pinned.url).toBe(`${helmUrl}/pkgs/lib-1.0.0.tgz`);
  });

  it("lists the versions there are when nothing matches", async () => {
    await expect(
      resolveChart(
        { type: "repo", repo: helmUrl, name: "lib", version: "^2.0.0" },
        { workDir: path.join(work, "repo-d"), configDir: work },
      ),
    ).rejects.toThrow(
      `chart lib from ${helmUrl}: no version satisfies "^2.0.0"; the repository has 1.0.0, 0.2.1-rc.1, 0.2.0, 0.1.0`,
    );
    await expect(
      resolveChart(
        { type: "repo", repo: helmUrl, name: "nope", version: "1.0.0" },
        { workDir: path.join(work, "repo-e"), configDir: work },
      ),
    ).rejects.toThrow("the repository's index.yaml lists no chart named nope");
  });

  it("names the repository and the status when index.yaml cannot be fetched", async () => {
    await expect(
      resolveChart(
        { type: "repo", repo: `${helmUrl}/missing`, name: "lib", version: "1.0.0" },
        { workDir: path.join(work, "repo-g"), configDir: work },
      ),
    ).rejects.toThrow(
      `chart lib from ${helmUrl}/missing: GET ${helmUrl}/missing/index.yaml failed: HTTP 404`,
    );
  });

  it("refuses a chart whose bytes differ from the index digest (exit 3) and keeps nothing of it", async () => {
    const dir = path.join(work, "repo-f");
    const err = await resolveChart(
      { type: "repo", repo: helmUrl, name: "tampered", version: "1.0.0" },
      { workDir: dir, configDir: work },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(exitCodeOf(err)).toBe(3);
    expect((err as IntegrityError).code).toBe("DIGEST_MISMATCH");
    expect((err as Error).message).toMatch(
      new RegExp(
        `^chart tampered 1\\.0\\.0 from ${helmUrl}/tampered-1\\.0\\.0\\.tgz has sha256 [0-9a-f]{64}, but the index\\.yaml of ${helmUrl} lists [0-9a-f]{64}$`,
      ),
    );
    const left: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(path.join(d, e.name));
        else left.push(e.name);
      }
    };
    await walk(dir);
    expect(left.filter((n) => n.includes("tampered"))).toEqual([]);
  });

  it("fetches an https:// dependency of a chart folder from its repository into charts/", async () => {
    const cfg = path.join(work, "cfg");
    await writeTree(cfg, {
      "charts/app/Chart.yaml": minimalChart("app", "1.0.0", [
        { name: "lib", version: "~0.1", repository: helmUrl },
      ]),
      "charts/app/values.yaml": "lib:\n  image:\n    tag: override\n",
    });
    const r = await resolveChart(
      { type: "path", path: path.join(cfg, "charts/app"), images: "auto" },
      {
        workDir: path.join(work, "path-a"),
        configDir: cfg,
      },
    );
    expect(r.source).toBe("path:charts/app");
    expect(r.pinned).toEqual({ path: "charts/app", sha256: r.sha256 });
    expect(await listing(r.file)).toEqual([
      "app/Chart.yaml",
      "app/values.yaml",
      "app/charts/lib-0.1.0.tgz",
      "app/charts/lib-0.1.0.tgz!lib/Chart.yaml",
      "app/charts/lib-0.1.0.tgz!lib/values.yaml",
    ]);
    expect(r.dependencies).toEqual([
      {
        name: "lib",
        version: "0.1.0",
        key: "lib",
        repository: helmUrl,
        sha256: expect.stringMatching(/^[a-f0-9]{64}$/),
        dependencies: [],
      },
    ]);
    expect(r.images.map((i) => [i.chartPath.join("/"), i.ref])).toEqual([
      ["app/lib", "docker.io/org/lib:override"],
    ]);
    const tree = await readChartArchive(r.file, "app");
    expect(tree.subcharts.map((s) => s.metadata.version)).toEqual(["0.1.0"]);
  });

  it("accepts a config folder reached through a symbolic link", async () => {
    const real = path.join(work, "cfg-real");
    await writeTree(real, { "charts/plain/Chart.yaml": minimalChart("plain", "0.3.0") });
    await symlink(real, path.join(work, "cfg-link"));
    const r = await resolveChart(
      { type: "path", path: path.join(work, "cfg-link/charts/plain"), images: "auto" },
      { workDir: path.join(work, "path-c"), configDir: path.join(work, "cfg-link") },
    );
    expect(r).toMatchObject({
      name: "plain",
      version: "0.3.0",
      pinned: { path: "charts/plain" },
      images: [],
    });
  });

  it("refuses a chart folder outside the config folder", async () => {
    const elsewhere = await mkdtemp(path.join(tmpdir(), "airgap-charts-elsewhere-"));
    try {
      await writeTree(elsewhere, { "Chart.yaml": minimalChart("x") });
      await expect(
        resolveChart(
          { type: "path", path: elsewhere, images: "auto" },
          {
            workDir: path.join(work, "path-b"),
            configDir: path.join(work, "cfg"),
          },
        ),
      ).rejects.toThrow(/is outside the config folder/);
      expect(await readdir(path.join(work, "path-b"))).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
