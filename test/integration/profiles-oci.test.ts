/**
 * Profiles as ORAS-style OCI artifacts (in a layout and on the plain test registry), read back as
 * `oci:` profile sources; Supermarket sources against a Supermarket API served as static files.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { RegistryClient } from "../../src/oci/registry/client.js";
import { storeProfileArtifact } from "../../src/profiles/artifact.js";
import { type ResolvedProfile, resolveProfiles } from "../../src/profiles/resolve.js";
import { OciLayoutStore } from "../../src/store/layout.js";
import { registryRepository } from "../../src/store/registry.js";
import { needEnv } from "../helpers/env.js";

const uid = `${process.pid}-${Date.now().toString(36)}`;
let work: string;
let profile: ResolvedProfile;

function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "airgap-profile-oci-"));
  const src = path.join(work, "cfg", "container-baseline");
  await mkdir(path.join(src, "controls"), { recursive: true });
  await writeFile(path.join(src, "inspec.yml"), "name: container-baseline\nversion: 0.9.2\n");
  await writeFile(path.join(src, "controls", "c.rb"), 'control "c-1" do\nend\n');
  [profile] = (await resolveProfiles([{ path: "container-baseline" }], {
    workDir: path.join(work, "out"),
    configDir: path.join(work, "cfg"),
  })) as [ResolvedProfile];
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("profile OCI artifacts", () => {
  it("stores an ORAS-style artifact in a layout and returns descriptor and inventory", async () => {
    const layout = await OciLayoutStore.open(path.join(work, "layout"), { create: true });
    const repo = layout.repository("profiles/container-baseline");
    const { descriptor, inventory } = await storeProfileArtifact(repo, profile, { tag: "0.9.2" });
    await layout.save();
    expect(descriptor.artifactType).toBe("application/vnd.cinc.profile.v1+tar+gzip");
    const manifest = JSON.parse(await readFile(layout.blobPath(descriptor.digest), "utf8"));
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.cinc.profile.v1+tar+gzip",
      config: {
        mediaType: "application/vnd.oci.empty.v1+json",
        digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        size: 2,
      },
      layers: [
        {
          mediaType: "application/vnd.cinc.profile.v1+tar+gzip",
          digest: `sha256:${profile.sha256}`,
          size: profile.size,
          annotations: { "org.opencontainers.image.title": "container-baseline-0.9.2.tar.gz" },
        },
      ],
      annotations: {
        "io.cinc.profile.name": "container-baseline",
        "io.cinc.profile.version": "0.9.2",
        "io.cinc.profile.source": `path:container-baseline#sha256=${(profile.source as { sha256: string }).sha256}`,
        "org.opencontainers.image.version": "0.9.2",
      },
    });
    expect(await readFile(layout.blobPath(`sha256:${profile.sha256}`))).toEqual(
      await readFile(profile.tarPath),
    );
    expect(await readFile(layout.blobPath(manifest.config.digest), "utf8")).toBe("{}");
    expect(inventory).toMatchObject({
      kind: "profile",
      name: "container-baseline",
      version: "0.9.2",
      sha256: profile.sha256,
      size: profile.size,
      digest: descriptor.digest,
      source: profile.source,
      dependencies: [],
    });
    const index = JSON.parse(await readFile(path.join(work, "layout", "index.json"), "utf8"));
    expect(index.manifests.some((m: { digest: string }) => m.digest === descriptor.digest)).toBe(true);
  });

  it("pushes to a registry and reads it back as an oci: source, pinned to the manifest digest", async () => {
    const host = needEnv("AIRGAP_TEST_REGISTRY_PLAIN");
    const client = new RegistryClient({ hosts: [{ host, plainHTTP: true }] });
    const repoName = `profiles/cb-${uid}`;
    const { descriptor } = await storeProfileArtifact(registryRepository(client, host, repoName), profile, {
      tag: "0.9.2",
    });
    const again = await resolveProfiles([{ oci: `${host}/${repoName}:0.9.2` }], {
      workDir: path.join(work, "from-oci"),
      configDir: work,
      openOci: (registry, repository) => registryRepository(client, registry, repository),
    });
    expect(again[0]!.source).toEqual({ oci: `${host}/${repoName}:0.9.2`, digest: descriptor.digest });
    expect(again[0]!.name).toBe("container-baseline");
    // re-vendoring the same profile gives the same archive
    expect(again[0]!.sha256).toBe(profile.sha256);
  });
});

describe("supermarket sources", () => {
  let base: string;
  let tarSha: string;

  beforeAll(async () => {
    const root = path.join(needEnv("AIRGAP_TEST_HTTP_ROOT"), `supermarket-${uid}`);
    base = `${needEnv("AIRGAP_TEST_HTTP_URL")}/supermarket-${uid}`;
    await mkdir(path.join(root, "api", "v1", "tools"), { recursive: true });
    await mkdir(path.join(root, "dl"), { recursive: true });
    const tar = await readFile(profile.tarPath);
    tarSha = sha256(tar);
    await writeFile(path.join(root, "dl", "container-baseline-0.9.2.tar.gz"), tar);
    await writeFile(
      path.join(root, "api", "v1", "tools", "container-baseline"),
      JSON.stringify({
        name: "container-baseline",
        slug: "container-baseline",
        type: "compliance_profile",
        owner: "cinc",
        source_url: `${base}/dl/container-baseline-0.9.2.tar.gz`,
      }),
    );
  });

  it("finds the tool, downloads its source and pins it by sha256", async () => {
    const r = await resolveProfiles(
      [{ supermarket: "supermarket://cinc/Container-Baseline", url: base, version: "0.9.2" }],
      {
        workDir: path.join(work, "sm"),
        configDir: work,
      },
    );
    expect(r[0]!.source).toEqual({ url: `${base}/dl/container-baseline-0.9.2.tar.gz`, sha256: tarSha });
    expect(r[0]!.sha256).toBe(profile.sha256);
  });

  it("records a supermarket dependency as the url it resolves to", async () => {
    const cfg = path.join(work, "sm-dep");
    await mkdir(path.join(cfg, "top"), { recursive: true });
    await writeFile(
      path.join(cfg, "top", "inspec.yml"),
      `name: top\nversion: 1.0.0\ndepends:\n  - name: cb\n    supermarket: cinc/container-baseline\n    supermarket_url: ${base}\n`,
    );
    const r = await resolveProfiles([{ path: "top" }], {
      workDir: path.join(work, "sm-dep-out"),
      configDir: cfg,
    });
    expect(parseYaml(r[0]!.lockfile).depends).toEqual([
      {
        name: "cb",
        resolved_source: { url: `${base}/dl/container-baseline-0.9.2.tar.gz`, sha256: tarSha },
        version_constraints: [],
      },
    ]);
  });

  it("refuses another owner and another version", async () => {
    const owner = await resolveProfiles(
      [{ supermarket: "supermarket://someone/container-baseline", url: base }],
      {
        workDir: path.join(work, "sm2"),
        configDir: work,
      },
    ).catch((e: unknown) => e);
    expect((owner as Error).message).toContain("under owner cinc, not someone");
    const version = await resolveProfiles(
      [{ supermarket: "supermarket://cinc/container-baseline", url: base, version: "1.0.0" }],
      {
        workDir: path.join(work, "sm3"),
        configDir: work,
      },
    ).catch((e: unknown) => e);
    expect((version as Error).message).toContain("version 0.9.2, not the requested version 1.0.0");
    const missing = await resolveProfiles([{ supermarket: "supermarket://cinc/nothing", url: base }], {
      workDir: path.join(work, "sm4"),
      configDir: work,
    }).catch((e: unknown) => e);
    expect((missing as Error).message).toContain(`supermarket://cinc/nothing does not exist on ${base}`);
  });
});
