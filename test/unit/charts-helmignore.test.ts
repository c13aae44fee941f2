/** .helmignore rules as Helm 3's pkg/ignore evaluates them, including its unusual `!` rule. */
import { describe, expect, it } from "vitest";
import { globToRegExp, HelmIgnore } from "../../src/sources/charts/helmignore.js";

describe("Go filepath.Match globs", () => {
  it.each([
    ["*.txt", "a.txt", true],
    ["*.txt", "dir/a.txt", false],
    ["a?c", "abc", true],
    ["a?c", "a/c", false],
    ["a[b-d].txt", "ac.txt", true],
    ["a[b-d].txt", "ae.txt", false],
    ["a[^b].txt", "ac.txt", true],
    ["a[^b].txt", "ab.txt", false],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["a.b", "axb", false],
    ["(x)+", "(x)+", true],
  ])("%s against %s is %s", (pattern, path, want) => {
    expect(globToRegExp(pattern).test(path)).toBe(want);
  });

  it("refuses malformed patterns as Go does", () => {
    expect(() => globToRegExp("a[")).toThrow(/syntax error/);
    expect(() => globToRegExp("a[]")).toThrow(/syntax error/);
    expect(() => globToRegExp("a\\")).toThrow(/syntax error/);
  });
});

describe("HelmIgnore", () => {
  const rules = HelmIgnore.parse("# c\n\n*.tmp\n/root.txt\nsecrets/\nci/*.yaml\n");

  it("matches base names, anchored paths, folders only and structural paths", () => {
    expect(rules.ignores("a/b/x.tmp", false)).toBe(true);
    expect(rules.ignores("root.txt", false)).toBe(true);
    expect(rules.ignores("sub/root.txt", false)).toBe(false);
    expect(rules.ignores("secrets", true)).toBe(true);
    expect(rules.ignores("secrets", false)).toBe(false);
    expect(rules.ignores("deep/secrets", true)).toBe(true);
    expect(rules.ignores("ci/x.yaml", false)).toBe(true);
    expect(rules.ignores("ci/x.txt", false)).toBe(false);
    expect(rules.ignores("values.yaml", false)).toBe(false);
  });

  it("always ignores dot files in templates/", () => {
    expect(rules.ignores("templates/.swp", false)).toBe(true);
    expect(rules.ignores("templates/a.yaml", false)).toBe(false);
  });

  it("applies a ! rule as Helm does: whatever does not match it is ignored", () => {
    const neg = HelmIgnore.parse("!*.yaml\n");
    expect(neg.ignores("values.yaml", false)).toBe(false);
    expect(neg.ignores("README.md", false)).toBe(true);
  });

  it("names the line of a rule it refuses", () => {
    expect(() => HelmIgnore.parse("a\n**/b\n", "c/.helmignore")).toThrow(
      'c/.helmignore:2: double-star (**) syntax is not supported: "**/b"',
    );
  });
});
