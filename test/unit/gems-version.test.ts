/**
 * RubyGems version and requirement rules. Expected values are what RubyGems 3.3 (Debian 12's ruby)
 * answers; test/integration/gems-version-ruby.test.ts compares a larger grid with ruby itself.
 */
import { describe, expect, it } from "vitest";
import {
  compareGemVersions,
  gemVersionMatches,
  parseGemRequirement,
  parseGemVersion,
} from "../../src/sources/gems/gem-version.js";

const matches = (version: string, requirement: string) =>
  gemVersionMatches(version, parseGemRequirement(requirement));

describe("Gem::Version", () => {
  it("orders versions as RubyGems does: trailing zeros ignored, letters mark pre-releases", () => {
    expect(compareGemVersions("1.0.a", "1.0")).toBe(-1);
    expect(compareGemVersions("1.0", "1")).toBe(0);
    expect(compareGemVersions("1.0.0.pre", "1.0.0.rc1")).toBe(-1);
    expect(compareGemVersions("2.0.0-rc1", "2.0.0.pre.rc1")).toBe(0);
    expect(compareGemVersions("1.2.3.4", "1.2.3")).toBe(1);
    expect(compareGemVersions("1.10", "1.9")).toBe(1);
    expect(compareGemVersions("6.1.7.6", "6.1.7.10")).toBe(-1);
  });

  it("knows pre-releases by their letters and refuses what is not a version", () => {
    expect(parseGemVersion("2.0.0.beta1").prerelease).toBe(true);
    expect(parseGemVersion("2.0.0").prerelease).toBe(false);
    expect(() => parseGemVersion("1.0/../x")).toThrow(/not a RubyGems version/);
    expect(() => parseGemVersion("v1.0")).toThrow(/not a RubyGems version/);
  });
});

describe("Gem::Requirement", () => {
  it("reads ~> with as many parts as written, like RubyGems (four-part versions included)", () => {
    expect(matches("1.2.4", "~> 1.2.3.4")).toBe(false);
    expect(matches("1.2.3.9", "~> 1.2.3.4")).toBe(true);
    expect(matches("1.9", "~> 1")).toBe(true);
    expect(matches("2.0", "~> 1")).toBe(false);
    expect(matches("1.3.0", "~> 1.2")).toBe(true);
    expect(matches("2.0.0", "~> 1.2")).toBe(false);
    expect(matches("1.2.9", "~> 1.2.0")).toBe(true);
    expect(matches("1.3.0", "~> 1.2.0")).toBe(false);
    expect(matches("0.5", "~> 0.a")).toBe(true);
  });

  it("takes several constraints, comma-separated or as a list, and = when no operator is written", () => {
    expect(matches("1.5", ">= 1.0, < 2")).toBe(true);
    expect(matches("2.0", ">= 1.0, < 2")).toBe(false);
    expect(gemVersionMatches("1.5.0", parseGemRequirement([">= 0.5", "!= 1.5.0"]))).toBe(false);
    expect(matches("1.0.0", "1.0")).toBe(true);
    expect(matches("1.0.1", "1.0")).toBe(false);
    expect(matches("0.0.1", "")).toBe(true);
    expect(matches("3", "> 2")).toBe(true);
    expect(matches("2", "<= 2.0.0")).toBe(true);
  });

  it("only lets a pre-release through a requirement that names one (Gem::Dependency#match?)", () => {
    expect(matches("1.0.pre", ">= 0")).toBe(false);
    expect(matches("2.0.pre", ">= 1.0.pre")).toBe(true);
    expect(matches("2.0.0.pre", "~> 1.2")).toBe(false);
    expect(matches("2.0.0", "~> 2.0.0.pre")).toBe(true);
    expect(matches("2.1", "~> 2.0.0.pre")).toBe(false);
  });

  it("refuses requirements RubyGems would not parse", () => {
    expect(() => parseGemRequirement("=> 1.0")).toThrow(/not a RubyGems requirement/);
    expect(() => parseGemRequirement("~> 1.x-")).toThrow(/not a RubyGems requirement/);
    expect(() => parseGemRequirement("^1.2")).toThrow(/not a RubyGems requirement/);
  });
});
