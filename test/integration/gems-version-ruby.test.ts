/**
 * airgap's RubyGems version rules against RubyGems itself (Debian's ruby): every version against
 * every requirement (Gem::Dependency#match?, pre-release rule included) and every pair of versions
 * (Gem::Version#<=>). Any disagreement is listed.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  compareGemVersions,
  gemVersionMatches,
  parseGemRequirement,
} from "../../src/sources/gems/gem-version.js";
import { requireRuby, rubyEnv } from "../helpers/gems.js";

const VERSIONS = [
  "0",
  "0.0.1",
  "0.1",
  "0.9.9",
  "1",
  "1.0",
  "1.0.0",
  "1.0.0.1",
  "1.0.1",
  "1.0.a",
  "1.0.0.pre",
  "1.0.0.rc1",
  "1.0.0-rc2",
  "1.1",
  "1.2.3",
  "1.2.3.4",
  "1.2.4",
  "1.9",
  "1.10",
  "1.10.0.beta.2",
  "2.0.0.pre",
  "2.0",
  "2.0.0.1",
  "2.1",
  "3.0.0",
  "6.1.7.6",
  "6.1.7.10",
  "10.0",
];

const REQUIREMENTS = [
  "",
  ">= 0",
  "= 1.0",
  "1.0",
  "!= 1.0",
  "> 1.0",
  "< 2",
  "<= 1.2.3",
  ">= 1.0, < 2",
  "~> 1",
  "~> 1.0",
  "~> 1.0.0",
  "~> 1.2.3.4",
  "~> 0.a",
  "~> 1.0.0.pre",
  ">= 1.0.0.pre",
  "~> 2.0.0.pre",
  "~> 6.1.7.6",
  "> 1.0, != 1.1, < 1.10",
  "~> 1.9, >= 1.9.5",
  "< 1.0.a",
];

const RUBY = `
require "json"
versions, requirements = JSON.parse(STDIN.read).values_at("versions", "requirements")
match = requirements.map do |r|
  dep = Gem::Dependency.new("x", *r.split(",").map(&:strip))
  versions.map { |v| dep.match?("x", v) }
end
order = versions.map { |a| versions.map { |b| Gem::Version.new(a) <=> Gem::Version.new(b) } }
puts JSON.generate({ match: match, order: order })
`;

describe("RubyGems version rules agree with RubyGems", () => {
  it("on every version × requirement and every pair of versions", () => {
    requireRuby();
    const out = execFileSync("ruby", ["-e", RUBY], {
      env: rubyEnv(),
      input: JSON.stringify({ versions: VERSIONS, requirements: REQUIREMENTS }),
      encoding: "utf8",
    });
    const ruby = JSON.parse(out) as { match: boolean[][]; order: number[][] };
    const disagreements: string[] = [];
    REQUIREMENTS.forEach((r, i) => {
      const constraints = parseGemRequirement(r);
      VERSIONS.forEach((v, j) => {
        const ours = gemVersionMatches(v, constraints);
        if (ours !== ruby.match[i]?.[j])
          disagreements.push(`"${v}" vs "${r}": ruby ${ruby.match[i]?.[j]}, airgap ${ours}`);
      });
    });
    VERSIONS.forEach((a, i) => {
      VERSIONS.forEach((b, j) => {
        const ours = compareGemVersions(a, b);
        if (ours !== ruby.order[i]?.[j])
          disagreements.push(`"${a}" <=> "${b}": ruby ${ruby.order[i]?.[j]}, airgap ${ours}`);
      });
    });
    expect(disagreements).toEqual([]);
    // the grid exercises both answers
    expect(ruby.match.flat().filter(Boolean).length).toBeGreaterThan(50);
    expect(ruby.match.flat().filter((m) => !m).length).toBeGreaterThan(50);
  });
});
