/**
 * The runner image create builds from the config's `runner.base`, and the offline plan of the
 * shipped bundle.config.yaml. Two creates from different caches give the same runner digest, and
 * `airgap runner-image` from the same base and tool gives that digest too (one builder). The
 * offline dry run lists every item of the shipped config with no connection opened: every proxy
 * variable points at a listener that counts connections, and a dry run that does need the network
 * is seen reaching it.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runCli } from "../helpers/cli.js";
import { closeFixtures, getManifest, plainTarget, pushIndex, uniqueRepo } from "../helpers/fixtures.js";

const SHIPPED = fileURLToPath(new URL("../../bundle.config.yaml", import.meta.url));
const source = plainTarget();
const ns = uniqueRepo("create-runner");
const RUNNER = `localhost/cinc-airgap/airgap:${VERSION}`;
let work: string;
let config: string;

interface ItemJson {
  kind: string;
  name: string;
  digest: string;
  platforms: string[];
  built?: { base: string; baseDigest: string; file: string; layer: string };
}

async function create(name: string): Promise<ItemJson> {
  const out = path.join(work, name);
  const r = await runCli([
    "bundle",
    "create",
    "-c",
    config,
    "-o",
    out,
    "--cache",
    path.join(work, `cache-${name}`),
  ]);
  expect(r.code, r.stderr).toBe(0);
  const items = (JSON.parse(readFileSync(path.join(out, "bundle.json"), "utf8")) as { items: ItemJson[] })
    .items;
  expect(items.map((i) => i.name)).toEqual([RUNNER]);
  return items[0]!;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), "airgap-create-runner-"));
  await pushIndex(source, `${ns}/node`, "20", {
    layerSizes: [10_000],
    platforms: [
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64", variant: "v8" },
      { os: "linux", architecture: "s390x" },
    ],
  });
  config = path.join(work, "bundle.config.yaml");
  writeFileSync(
    config,
    `apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: runner-only, version: 1.0.0 }
platforms: [linux/amd64, linux/arm64]
registries: [{ host: "${source.host}", plainHTTP: true }]
runner:
  base: ${source.host}/${ns}/node:20
`,
  );
});

afterAll(async () => {
  await closeFixtures();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("create builds the runner image", () => {
  it("from the base's asked platforms, the same digest from two caches, the same as airgap runner-image builds", async () => {
    const first = await create("one");
    const second = await create("two");
    expect(second.digest).toBe(first.digest);
    expect(first.kind).toBe("image");
    expect(first.platforms.sort()).toEqual(["linux/amd64", "linux/arm64/v8"]);
    const base = await getManifest(source, `${ns}/node`, "20");
    expect(first.built).toEqual({
      base: `${source.host}/${ns}/node:20@${base.digest}`,
      baseDigest: base.digest,
      file: `tools/airgap-${VERSION}.mjs`,
      layer: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    const registries = path.join(work, "registries.yaml");
    writeFileSync(
      registries,
      `apiVersion: cinc-airgap/v1\nkind: Import\nregistries: [{ host: "${source.host}", plainHTTP: true }]\n`,
    );
    const r = await runCli([
      "runner-image",
      "--base",
      `${source.host}/${ns}/node:20`,
      "--to",
      `${source.host}/${ns}/cinc-airgap/airgap:${VERSION}`,
      "--config",
      registries,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { digest: string }).digest).toBe(first.digest);
  });

  it("warns when the base is a moving :latest; the dry run lists the runner with the base's size to pull", async () => {
    await pushIndex(source, `${ns}/node`, "latest", { layerSizes: [2_000] });
    const latest = path.join(work, "latest.yaml");
    writeFileSync(latest, readFileSync(config, "utf8").replace(`${ns}/node:20`, `${ns}/node`));
    const r = await runCli([
      "bundle",
      "create",
      "-c",
      latest,
      "--dry-run",
      "--json",
      "--cache",
      path.join(work, "c3"),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: runner base .*\/node:latest: :latest is pinned/);
    const { plan } = JSON.parse(r.stdout) as { plan: { name: string; digest: string; size: number }[] };
    expect(plan).toEqual([
      expect.objectContaining({ name: RUNNER, digest: "(built at create)", size: expect.any(Number) }),
    ]);
    expect(plan[0]!.size).toBeGreaterThan(2_000);
  });
});

describe("bundle create --dry-run --offline on the shipped bundle.config.yaml", () => {
  let listener: Server;
  let connections = 0;
  let proxyEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as { port: number };
    const proxy = `http://127.0.0.1:${port}`;
    proxyEnv = {
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      ALL_PROXY: proxy,
      NO_PROXY: "",
      no_proxy: "",
    };
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  });

  it("lists every item with no connection, marking what needs the network to pin", async () => {
    const r = await runCli(
      [
        "bundle",
        "create",
        "-c",
        SHIPPED,
        "--dry-run",
        "--offline",
        "--json",
        "--cache",
        path.join(work, "dry"),
      ],
      { env: proxyEnv },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(connections).toBe(0);
    const { plan, notes } = JSON.parse(r.stdout) as {
      plan: { kind: string; name: string; digest: string; needsNetwork: boolean }[];
      notes: string[];
    };
    const count = (kind: string) => plan.filter((p) => p.kind === kind).length;
    expect([count("image"), count("profile"), count("chart"), count("gem"), count("file")]).toEqual([
      5, 3, 5, 1, 3,
    ]);
    const byName = new Map(plan.map((p) => [p.name, p]));
    // a tag is pinned by create; a commit or a published sha256 is pinned by the config itself
    expect(byName.get("docker.io/cincproject/auditor:6.8.24")?.needsNetwork).toBe(true);
    expect(byName.get(RUNNER)?.needsNetwork).toBe(true);
    expect(byName.get("localhost/files/kubectl:linux-arm64")).toMatchObject({
      needsNetwork: false,
      digest: "sha256:b97e93c20e3be4b8c8fa1235a41b4d77d4f2022ed3d899230dbbbbd43d26f872",
    });
    const charts = plan.filter((p) => p.kind === "chart");
    for (const c of charts)
      expect(c).toMatchObject({
        needsNetwork: false,
        digest: expect.stringMatching(/^commit [0-9a-f]{40}$/),
      });
    expect(plan.find((p) => p.kind === "gem")?.needsNetwork).toBe(true);
    expect(notes.join("\n")).toMatch(/17 items, 8 need the network to pin/);
    expect(notes.join("\n")).toMatch(/images: auto/);

    const human = await runCli(
      ["bundle", "create", "-c", SHIPPED, "--dry-run", "--offline", "--cache", path.join(work, "dry")],
      { env: proxyEnv },
    );
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /image {2}docker\.io\/cincproject\/auditor:6\.8\.24 .* needs the network to pin/,
    );
    expect(human.stdout).toMatch(/file {2}localhost\/files\/kubectl:linux-amd64 .* pinned by the config/);
    expect(connections).toBe(0);
  });

  it("the dry run that pins does reach for the network (through the proxy) and points at --offline when it cannot", async () => {
    const r = await runCli(
      ["bundle", "create", "-c", SHIPPED, "--dry-run", "--cache", path.join(work, "dry")],
      {
        env: proxyEnv,
      },
    );
    expect(r.code).toBe(1);
    expect(connections).toBeGreaterThan(0);
    expect(r.stderr).toContain("--dry-run --offline");
  });

  it("--offline without --dry-run is a usage error (exit 2)", async () => {
    const r = await runCli(["bundle", "create", "-c", SHIPPED, "--offline", "-o", path.join(work, "nope")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--dry-run");
  });
});
