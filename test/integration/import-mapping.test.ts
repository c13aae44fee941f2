import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  getManifest,
  listTags,
  type PushedImage,
  plainTarget,
  pushImage,
  tlsTarget,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { catalog, closeAgents, createBundle, isolatedEnv, writeBundleConfig } from "./import-helpers.js";

const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("map");
let work: string;
let dir: string;
let single: PushedImage;
let abc: PushedImage;
let abc2: PushedImage;
let env: NodeJS.ProcessEnv;

const src = (repo: string, tag: string) => `${source.host}/${ns}/${repo}:${tag}`;

async function underPrefix(prefix: string): Promise<string[]> {
  return (await catalog()).filter((r) => r.startsWith(`${prefix}/`));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-map-"));
  env = isolatedEnv(work);
  single = await pushImage(source, `${ns}/single`, "1.0", { layerSizes: [20_000] });
  // two repositories that flatten to the same name, with different content under the same tag
  abc = await pushImage(source, `${ns}/a/b-c`, "1", { layerSizes: [5_000] });
  abc2 = await pushImage(source, `${ns}/a-b/c`, "1", { layerSizes: [6_000] });
  dir = join(work, "bundle");
  await createBundle(
    writeBundleConfig(work, "mapping", [src("single", "1.0"), src("a/b-c", "1"), src("a-b/c", "1")]),
    dir,
    { cache: join(work, "cache") },
  );
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

describe("bundle import: where images land", () => {
  it("--keep-source-registry puts the source host (port as '-') under the prefix", async () => {
    const prefix = uniqueRepo("keep");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${tls.host}/${prefix}`,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
        "--keep-source-registry",
        "--out",
        join(work, "out-keep"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const hostComponent = source.host.replace(":", "-");
    expect(await underPrefix(prefix)).toEqual(
      [
        `${prefix}/${hostComponent}/${ns}/a-b/c`,
        `${prefix}/${hostComponent}/${ns}/a/b-c`,
        `${prefix}/${hostComponent}/${ns}/single`,
      ].sort(),
    );
    expect((await getManifest(tls, `${prefix}/${hostComponent}/${ns}/single`, "1.0")).digest).toBe(
      single.digest,
    );
    expect((await getManifest(tls, `${prefix}/${hostComponent}/${ns}/a/b-c`, "1")).digest).toBe(abc.digest);
  });

  it("explicit mappings in an import config (CA from the config's registries entry, not a flag)", async () => {
    const prefix = uniqueRepo("cfg");
    const cfg = join(work, "import.yaml");
    writeFileSync(
      cfg,
      `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: ${tls.host}
    ca: ${needEnv("AIRGAP_TEST_CA")}
mappings:
  - from: ${source.host}/${ns}/single
    to: ${prefix}/scanner/auditor
  - from: ${source.host}/${ns}/a
    to: ${prefix}/vendor-a
`,
    );
    const out = join(work, "out-cfg");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${tls.host}/${prefix}`,
        "--config",
        cfg,
        "--out",
        out,
        "--json",
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await underPrefix(prefix)).toEqual(
      [`${prefix}/${ns}/a-b/c`, `${prefix}/scanner/auditor`, `${prefix}/vendor-a/b-c`].sort(),
    );
    expect((await getManifest(tls, `${prefix}/scanner/auditor`, "1.0")).digest).toBe(single.digest);
    expect((await getManifest(tls, `${prefix}/vendor-a/b-c`, "1")).digest).toBe(abc.digest);
    expect((await getManifest(tls, `${prefix}/${ns}/a-b/c`, "1")).digest).toBe(abc2.digest);
    const result = JSON.parse(r.stdout) as { images: { source: string; target: string }[] };
    expect(result.images.find((i) => i.source === src("single", "1.0"))?.target).toBe(
      `${tls.host}/${prefix}/scanner/auditor:1.0`,
    );
  });

  it("without any CA option the TLS registry is refused (exit 1): trust comes only from our options", async () => {
    const prefix = uniqueRepo("noca");
    const r = await runCli(
      ["bundle", "import", dir, "--registry", `${tls.host}/${prefix}`, "--out", join(work, "o")],
      {
        env,
      },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/certificate|self[- ]signed|issuer|CA/i);
    expect(await underPrefix(prefix)).toEqual([]);
  });

  it("without credentials for the registry: exit 1, a message about authentication, nothing pushed", async () => {
    const prefix = uniqueRepo("noauth");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${tls.host}/${prefix}`,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
        "--out",
        join(work, "o-noauth"),
      ],
      { env: isolatedEnv(join(work, "noauth"), false) },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(tls.host);
    expect(r.stderr).toMatch(/401|unauthori[sz]ed|credential|authenticat/i);
    expect(await underPrefix(prefix)).toEqual([]);
  });

  it("--flatten that sends a/b-c:1 and a-b/c:1 to one tag fails before anything is pushed", async () => {
    const prefix = uniqueRepo("flat");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${tls.host}/${prefix}`,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
        "--flatten",
        "--out",
        join(work, "out-flat"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${tls.host}/${prefix}/${ns}-a-b-c:1`);
    expect(r.stderr).toContain(src("a/b-c", "1"));
    expect(r.stderr).toContain(src("a-b/c", "1"));
    expect(await underPrefix(prefix)).toEqual([]);
  });

  it("a mapping that sends two sources to one tag fails before anything is pushed", async () => {
    const prefix = uniqueRepo("clash");
    const cfg = join(work, "clash.yaml");
    writeFileSync(
      cfg,
      `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: ${tls.host}
    ca: ${needEnv("AIRGAP_TEST_CA")}
mappings:
  - from: ${source.host}/${ns}/a/b-c
    to: ${prefix}/same
  - from: ${source.host}/${ns}/a-b/c
    to: ${prefix}/same
`,
    );
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${tls.host}/${prefix}`,
        "--config",
        cfg,
        "--out",
        join(work, "o2"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${prefix}/same:1`);
    expect(await underPrefix(prefix)).toEqual([]);
    expect(await listTags(tls, `${prefix}/same`)).toEqual([]);
  });
});
