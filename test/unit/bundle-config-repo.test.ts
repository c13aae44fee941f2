/**
 * bundle.config.yaml at the repository root: the real scanner bundle. It must load offline through
 * the same loader `bundle create` (and `--dry-run`) runs first, pin what the review depends on, and
 * explain every item.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isMap, isSeq, parseDocument } from "yaml";
import { loadBundleConfig } from "../../src/config/load.js";

const FILE = fileURLToPath(new URL("../../bundle.config.yaml", import.meta.url));
const KSS = "https://github.com/mitre/kube-secure-scanner.git";

describe("the repository's bundle.config.yaml", () => {
  it("validates with the loader bundle create uses, without any network", async () => {
    const { config } = await loadBundleConfig(FILE);
    expect(config.metadata.name).toBe("cinc-secure-scanner");
    expect(config.platforms).toEqual(["linux/amd64", "linux/arm64"]);
  });

  it("pins CINC Auditor to a 6.x release, never latest; carries the approaches' targets and the SAF CLI", async () => {
    const { config } = await loadBundleConfig(FILE);
    const refs = config.images.map(
      (i) => `${i.reference.registry}/${i.reference.repository}:${i.reference.tag}`,
    );
    const auditor = config.images.find((i) => i.reference.repository === "cincproject/auditor");
    expect(auditor?.reference.registry).toBe("docker.io");
    expect(auditor?.reference.tag).toMatch(/^6\.\d+\.\d+$/);
    expect(refs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^gcr\.io\/distroless\//),
        expect.stringMatching(/^docker\.io\/library\/busybox:/),
        expect.stringMatching(/^docker\.io\/mitre\/saf:\d+\.\d+\.\d+$/),
      ]),
    );
  });

  it("names the five kube-secure-scanner charts at one pinned commit, images auto, and the container baseline from it", async () => {
    const { config } = await loadBundleConfig(FILE);
    const charts = config.charts.filter((c) => c.type === "git");
    expect(charts.map((c) => c.path).sort()).toEqual([
      "helm-charts/common-scanner",
      "helm-charts/distroless-scanner",
      "helm-charts/scanner-infrastructure",
      "helm-charts/sidecar-scanner",
      "helm-charts/standard-scanner",
    ]);
    for (const c of charts) {
      expect(c.git).toBe(KSS);
      expect(c.ref).toMatch(/^[0-9a-f]{40}$/);
      expect(c.images).toBe("auto");
    }
    const baseline = config.profiles.find((p) => p.type === "git" && p.git === KSS);
    expect(baseline).toMatchObject({
      refKind: "ref",
      ref: charts[0]!.ref,
      relativePath: "examples/cinc-profiles/container-baseline",
    });
    const gitProfiles = config.profiles.flatMap((p) => (p.type === "git" ? [p.git] : []));
    expect(gitProfiles).toEqual(
      expect.arrayContaining([
        "https://github.com/dev-sec/linux-baseline.git",
        expect.stringMatching(/^https:\/\/github\.com\/mitre\/.*-stig-baseline\.git$/),
      ]),
    );
  });

  it("carries train-k8s-container with train provided, and kubectl for both platforms with a checksum each", async () => {
    const { config } = await loadBundleConfig(FILE);
    expect(config.gems).toEqual([
      expect.objectContaining({ name: "train-k8s-container", provided: ["train"] }),
    ]);
    const kubectl = config.files.find((f) => f.name === "kubectl")!;
    expect(kubectl.platforms).toEqual(["linux/amd64", "linux/arm64"]);
    expect(Object.keys(kubectl.sha256 as Record<string, string>).sort()).toEqual([
      "linux/amd64",
      "linux/arm64",
    ]);
    for (const f of config.files) expect(f.sha256, `${f.name} has no checksum`).toBeDefined();
  });

  it("builds the runner image of the import Job from a Node >= 20 base, for both platforms, explained", async () => {
    const { config } = await loadBundleConfig(FILE);
    expect(config.runner?.reference.registry).toBe("docker.io");
    expect(config.runner?.reference.repository).toBe("library/node");
    expect(Number(config.runner?.reference.tag?.split(/[.-]/)[0])).toBeGreaterThanOrEqual(20);
    expect(config.runner?.platforms).toEqual(["linux/amd64", "linux/arm64"]);
    expect(readFileSync(FILE, "utf8")).toMatch(/(#[^\n]*\n)+runner:\n {2}base: /);
  });

  it("explains every item with a comment", () => {
    const doc = parseDocument(readFileSync(FILE, "utf8"));
    let items = 0;
    for (const section of ["images", "profiles", "charts", "gems", "files"]) {
      const seq = doc.get(section, true);
      if (!isSeq(seq)) throw new Error(`${section} is not a list`);
      seq.items.forEach((item, i) => {
        items++;
        // the first item of a list may carry its comment on the list itself
        const comment =
          (isMap(item) ? item.commentBefore : undefined) ?? (i === 0 ? seq.commentBefore : undefined);
        expect(comment?.trim(), `${section}[${i}] has no comment`).toBeTruthy();
      });
    }
    expect(items).toBeGreaterThanOrEqual(15);
  });
});
