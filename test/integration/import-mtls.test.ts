import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import {
  closeFixtures,
  getManifest,
  mtlsTarget,
  type PushedImage,
  plainTarget,
  pushImage,
  uniqueRepo,
} from "../helpers/fixtures.js";
import { catalog, closeAgents, createBundle, isolatedEnv, writeBundleConfig } from "./import-helpers.js";

const source = plainTarget();
const mtls = mtlsTarget();
const ns = uniqueRepo("mtls");
let work: string;
let dir: string;
let image: PushedImage;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-mtls-"));
  env = isolatedEnv(work, false);
  image = await pushImage(source, `${ns}/app`, "1", { layerSizes: [50_000, 5_000] });
  dir = join(work, "bundle");
  await createBundle(writeBundleConfig(work, "mtls", [`${source.host}/${ns}/app:1`]), dir, {
    cache: join(work, "cache"),
  });
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

describe("bundle import into a registry that requires a client certificate", () => {
  it("--cert/--cert-key with --ca-file: pushed, digest unchanged", async () => {
    const prefix = uniqueRepo("cert");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${mtls.host}/${prefix}`,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
        "--cert",
        needEnv("AIRGAP_TEST_CLIENT_CERT"),
        "--cert-key",
        needEnv("AIRGAP_TEST_CLIENT_KEY"),
        "--out",
        join(work, "out"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect((await getManifest(mtls, `${prefix}/${ns}/app`, "1")).digest).toBe(image.digest);
  });

  it("cert and key named in the import config's registries entry work the same", async () => {
    const prefix = uniqueRepo("cfgcert");
    const cfg = join(work, "import.yaml");
    writeFileSync(
      cfg,
      `apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: ${mtls.host}
    ca: ${needEnv("AIRGAP_TEST_CA")}
    cert: ${needEnv("AIRGAP_TEST_CLIENT_CERT")}
    key: ${needEnv("AIRGAP_TEST_CLIENT_KEY")}
`,
    );
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${mtls.host}/${prefix}`,
        "--config",
        cfg,
        "--out",
        join(work, "out2"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect((await getManifest(mtls, `${prefix}/${ns}/app`, "1")).digest).toBe(image.digest);
  });

  it("without a client certificate: exit 1 and a message that says a client certificate is needed", async () => {
    const prefix = uniqueRepo("nocert");
    const r = await runCli(
      [
        "bundle",
        "import",
        dir,
        "--registry",
        `${mtls.host}/${prefix}`,
        "--ca-file",
        needEnv("AIRGAP_TEST_CA"),
        "--out",
        join(work, "out3"),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(mtls.host);
    expect(r.stderr).toMatch(/client certificate/i);
    expect(r.stderr).toMatch(/--cert|cert:/);
    expect((await catalog("mtls")).filter((x) => x.startsWith(`${prefix}/`))).toEqual([]);
  });
});
