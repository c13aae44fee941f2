/** Choosing a chart version from a Helm repository's index.yaml, and naming sources without credentials. */
import { describe, expect, it } from "vitest";
import { describeChartSource } from "../../src/sources/charts/index.js";
import { indexEntries, selectVersion } from "../../src/sources/charts/repo.js";

const INDEX = `apiVersion: v1
entries:
  scanner:
    - name: scanner
      version: 1.2.0
      urls: [scanner-1.2.0.tgz]
      digest: ${"a".repeat(64)}
    - name: scanner
      version: 1.10.0
      urls: [https://cdn.example.org/scanner-1.10.0.tgz]
      digest: ${"b".repeat(64)}
    - name: scanner
      version: 2.0.0-rc.1
      urls: [scanner-2.0.0-rc.1.tgz]
    - name: scanner
      version: not-semver
      urls: [x.tgz]
  other:
    - name: other
      version: 0.1.0
generated: "2026-11-30T00:00:00Z"
`;

describe("selectVersion", () => {
  const entries = indexEntries(INDEX, "scanner", "index.yaml");

  it("reads the entries of one chart", () => {
    expect(entries.map((e) => e.version)).toEqual(["1.2.0", "1.10.0", "2.0.0-rc.1", "not-semver"]);
    expect(entries[1]).toEqual({
      name: "scanner",
      version: "1.10.0",
      urls: ["https://cdn.example.org/scanner-1.10.0.tgz"],
      digest: "b".repeat(64),
    });
    expect(indexEntries(INDEX, "absent", "index.yaml")).toEqual([]);
  });

  it.each([
    ["^1.2", "1.10.0"],
    ["~1.2", "1.2.0"],
    ["1.2.0", "1.2.0"],
    ["v1.2.0", "1.2.0"],
    [">= 1.0, < 1.5", "1.2.0"],
    ["*", "1.10.0"],
    ["2.0.0-rc.1", "2.0.0-rc.1"],
    [">=1.0.0-0", "2.0.0-rc.1"],
  ])("%s picks %s", (range, want) => {
    expect(selectVersion(entries, range, "chart scanner").version).toBe(want);
  });

  it("lists the versions there are when nothing satisfies the range", () => {
    expect(() => selectVersion(entries, "^3", "chart scanner")).toThrow(
      'chart scanner: no version satisfies "^3"; the repository has 2.0.0-rc.1, 1.10.0, 1.2.0',
    );
  });

  it("refuses something that is neither a version nor a range", () => {
    expect(() => selectVersion(entries, "latest!", "chart scanner")).toThrow(
      'chart scanner: version "latest!" is neither a version nor a semver range',
    );
  });

  it("refuses an index without entries", () => {
    expect(() => indexEntries("apiVersion: v1\n", "x", "https://h/index.yaml")).toThrow(
      "https://h/index.yaml has no entries mapping; is this a Helm repository?",
    );
  });
});

describe("describeChartSource", () => {
  it("names each kind as written, without credentials", () => {
    const repo = describeChartSource(
      { type: "repo", repo: "https://user:secret@charts.example.org/", name: "s", version: "^1" },
      "/c",
    );
    expect(repo).toMatch(/^https:\/\/(\*\*\*@)?charts\.example\.org\/ s \^1$/);
    expect(repo).not.toMatch(/user|secret/);
    const git = describeChartSource(
      {
        type: "git",
        git: "https://tok@github.com/o/r.git",
        ref: "main",
        path: "helm-charts/x",
        images: "auto",
      },
      "/c",
    );
    expect(git).toMatch(/^https:\/\/(\*\*\*@)?github\.com\/o\/r\.git@main:helm-charts\/x$/);
    expect(git).not.toContain("tok@");
    expect(describeChartSource({ type: "path", path: "/c/charts/app", images: "auto" }, "/c")).toBe(
      "path:charts/app",
    );
  });
});
