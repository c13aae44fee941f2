/** `gems:` entries in bundle.config.yaml: the optional platform, and its refusal when malformed. */
import { describe, expect, it } from "vitest";
import { parseBundleConfig } from "../../src/config/index.js";
import { ConfigError, exitCodeOf } from "../../src/errors.js";

const HEAD = "apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: b, version: '1' }\n";

describe("gems: in the bundle config", () => {
  it("takes a platform, and leaves it out when not written", () => {
    const config = parseBundleConfig(
      `${HEAD}gems:\n  - name: ffi\n    version: "~> 1.15"\n    platform: x86_64-linux\n  - name: train-k8s-container\n`,
      "/cfg/bundle.config.yaml",
    );
    expect(config.gems).toEqual([
      {
        name: "ffi",
        version: "~> 1.15",
        platform: "x86_64-linux",
        source: "https://rubygems.org",
        provided: [],
      },
      { name: "train-k8s-container", source: "https://rubygems.org", provided: [] },
    ]);
  });

  it("refuses a platform that is not one, at its line", () => {
    let err: unknown;
    try {
      parseBundleConfig(
        `${HEAD}gems:\n  - name: ffi\n    platform: "x86_64/../linux"\n`,
        "/cfg/bundle.config.yaml",
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(exitCodeOf(err)).toBe(2);
    expect((err as Error).message).toMatch(
      /bundle\.config\.yaml:6:\d+: gems\[0\]\.platform: expected a gem platform/,
    );
  });
});
