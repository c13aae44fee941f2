/** Version constraints with the semverse rules CINC Auditor 6 applies to `depends[].version`. */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/errors.js";
import {
  compareVersions,
  parseConstraint,
  parseVersion,
  satisfies,
  satisfiesAll,
} from "../../src/profiles/version.js";

describe("profile versions", () => {
  it("parses short and prefixed versions like semverse", () => {
    expect(parseVersion("1")).toEqual({ major: 1, minor: 0, patch: 0 });
    expect(parseVersion("v2.3")).toEqual({ major: 2, minor: 3, patch: 0 });
    expect(parseVersion("1.2.3-rc.1+b.5")).toEqual({
      major: 1,
      minor: 2,
      patch: 3,
      pre: "rc.1",
      build: "b.5",
    });
    expect(() => parseVersion("one")).toThrow(ConfigError);
  });

  it.each([
    ["1.0.0-alpha", "1.0.0", -1],
    ["1.0.0-alpha", "1.0.0-alpha.1", -1],
    ["1.0.0-beta.2", "1.0.0-beta.11", -1],
    ["1.0.0-1", "1.0.0-a", -1],
    // semverse's own rule (not semver's): a longer pre-release ending in a word sorts first
    ["1.0.0-alpha.beta", "1.0.0-alpha", -1],
    ["1.0.0", "1.0.0+build.1", -1],
    ["1.0.1", "1.0.0", 1],
    ["2.0.0", "2.0", 0],
  ])("compares %s with %s as semverse does (%i)", (a, b, want) => {
    expect(compareVersions(parseVersion(a), parseVersion(b))).toBe(want);
  });

  it.each([
    ["1.2.3", "= 1.2.3", true],
    ["1.2.3", "1.2.3", true],
    ["1.2.4", "= 1.2.3", false],
    ["1.2.4", "!= 1.2.3", true],
    ["1.2.3", "!= 1.2.3", false],
    ["1.2.4", "> 1.2.3", true],
    ["1.2.3", "> 1.2.3", false],
    ["1.2.2", "< 1.2.3", true],
    ["1.2.3", ">= 1.2", true],
    ["1.1.9", ">= 1.2", false],
    ["1.2.3", "<= 1.2.3", true],
    ["1.9.0", "~> 1.2", true],
    ["2.0.0", "~> 1.2", false],
    ["1.2.9", "~> 1.2.3", true],
    ["1.3.0", "~> 1.2.3", false],
    ["1.2.2", "~> 1.2.3", false],
    ["1.5.0", "~> 1", true],
    ["2.0.0", "~> 1", false],
    ["1.5.0", "~ 1.2", true],
    // semverse: a pre-release does not satisfy a release constraint (no "greedy match")
    ["2.0.0-alpha", ">= 1.0.0", false],
    ["1.0.0-rc.1", "< 1.0.0", true],
    ["1.0.0-rc.2", ">= 1.0.0-rc.1", true],
  ])("%s against %s → %s", (version, constraint, want) => {
    expect(satisfies(version, constraint)).toBe(want);
  });

  it("requires every constraint of a list, and splits comma lists", () => {
    expect(satisfiesAll("1.5.0", [">= 1.0", "< 2.0"])).toBe(true);
    expect(satisfiesAll("2.5.0", [">= 1.0", "< 2.0"])).toBe(false);
    expect(satisfiesAll("1.5.0", [">= 1.0, < 2.0"])).toBe(true);
    expect(satisfiesAll("1.5.0", [])).toBe(true);
  });

  it("rejects malformed constraints with a message that shows examples", () => {
    expect(() => parseConstraint("=> 1.0")).toThrow(/is not a version constraint \(expected e\.g\./);
    expect(() => parseConstraint("about 2")).toThrow(ConfigError);
    expect(parseConstraint("")).toMatchObject({ operator: ">=" });
  });
});
