/** Planning `files:` downloads: URL expansion per platform, pins, and what is refused before any fetch. */
import { describe, expect, it } from "vitest";
import type { FileSpec } from "../../src/config/types.js";
import { UsageError } from "../../src/errors.js";
import { expandUrl, planFiles, platformSlug, withoutUserinfo } from "../../src/sources/files/index.js";

const A = "a".repeat(64);
const B = "b".repeat(64);

function spec(over: Partial<FileSpec>): FileSpec {
  return { name: "kubectl", url: "https://dl.example/{os}/{arch}/kubectl", platforms: [], ...over };
}

describe("expandUrl", () => {
  it("fills {os}, {arch} and {variant} from the platform", () => {
    expect(expandUrl("https://x/{os}-{arch}{variant}/f", "linux/arm/v7")).toBe("https://x/linux-armv7/f");
    expect(expandUrl("https://x/{os}/{arch}/f", "linux/amd64")).toBe("https://x/linux/amd64/f");
  });
  it("has no URL for a platform without the variant the URL needs, nor placeholders without a platform", () => {
    expect(expandUrl("https://x/{arch}{variant}/f", "linux/amd64")).toBeUndefined();
    expect(expandUrl("https://x/{os}/f", "any")).toBeUndefined();
    expect(expandUrl("https://x/f", "any")).toBe("https://x/f");
  });
});

describe("planFiles", () => {
  it("plans one download per platform with its own pin", () => {
    const plan = planFiles([
      spec({ platforms: ["linux/amd64", "linux/arm64"], sha256: { "linux/amd64": A, "linux/arm64": B } }),
    ]);
    expect(plan).toEqual([
      { name: "kubectl", platform: "linux/amd64", url: "https://dl.example/linux/amd64/kubectl", sha256: A },
      { name: "kubectl", platform: "linux/arm64", url: "https://dl.example/linux/arm64/kubectl", sha256: B },
    ]);
  });

  it("a platform-independent file is one download, platform `any`", () => {
    expect(planFiles([spec({ url: "https://dl.example/notes.txt", sha256: A })])).toEqual([
      { name: "kubectl", platform: "any", url: "https://dl.example/notes.txt", sha256: A },
    ]);
  });

  it("--platform replaces a per-platform file's platforms; a platform without a checksum is refused", () => {
    const s = spec({ platforms: ["linux/amd64"], sha256: { "linux/amd64": A } });
    expect(planFiles([s], { platforms: ["linux/amd64"] })).toHaveLength(1);
    expect(() => planFiles([s], { platforms: ["linux/arm64"] })).toThrow(
      /file kubectl has no sha256 for platform linux\/arm64/,
    );
  });

  it("refuses a missing checksum unless allowUnpinned", () => {
    const s = spec({ platforms: ["linux/amd64"] });
    expect(() => planFiles([s])).toThrow(UsageError);
    expect(planFiles([s], { allowUnpinned: true })[0]!.sha256).toBeUndefined();
  });

  it("refuses one checksum for several platforms' downloads, and a digest that is not 64 hex", () => {
    expect(() => planFiles([spec({ platforms: ["linux/amd64", "linux/arm64"], sha256: A })])).toThrow(
      /one sha256 cannot match/,
    );
    expect(() => planFiles([spec({ platforms: ["linux/amd64"], sha256: "ABC" })])).toThrow(
      /not 64 lowercase hexadecimal/,
    );
  });

  it("names the platform a URL cannot be made for", () => {
    expect(() =>
      planFiles([spec({ url: "https://x/{arch}{variant}/f", platforms: ["linux/amd64"], sha256: A })]),
    ).toThrow(/file kubectl has no URL for platform linux\/amd64/);
  });
});

describe("names", () => {
  it("slugs platforms for tags and drops credentials from recorded URLs", () => {
    expect(platformSlug("linux/arm/v7")).toBe("linux-arm-v7");
    expect(withoutUserinfo("https://u:p@host/x")).toBe("https://host/x");
  });
});
