/**
 * `bundle import --out DIR` writes DIR/manifests/, a kustomize overlay of the shipped manifests
 * with the registry, artifact repository, addresses, CA and key this import used: it renders to
 * valid Kubernetes objects with no editing.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { runCli } from "../helpers/cli.js";
import { needEnv } from "../helpers/env.js";
import { closeFixtures, plainTarget, pushImage, tlsTarget, uniqueRepo } from "../helpers/fixtures.js";
import { validateObject } from "../helpers/k8s-schema.js";
import { type K8sObject, kustomize } from "../helpers/kustomize.js";
import { closeAgents, createBundle, generateKey, isolatedEnv, writeBundleConfig } from "./import-helpers.js";

const source = plainTarget();
const tls = tlsTarget();
const ns = uniqueRepo("manifests");
const prefix = uniqueRepo("site");
let work: string;
let out: string;
let objects: K8sObject[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airgap-import-manifests-"));
  await pushImage(source, `${ns}/auditor`, "6.8.24", { layerSizes: [20_000] });
  const keys = await generateKey(work, "cosign");
  const cfg = writeBundleConfig(work, "manifests", [`${source.host}/${ns}/auditor:6.8.24`]);
  const bundle = join(work, "bundle");
  await createBundle(cfg, bundle, { key: keys.key, cache: join(work, "cache") });
  out = join(work, "airgap-out");
  const r = await runCli(
    [
      "bundle",
      "import",
      bundle,
      "--registry",
      `${tls.host}/${prefix}`,
      "--key",
      keys.pub,
      "--ca-file",
      needEnv("AIRGAP_TEST_CA"),
      // no profile in this bundle: the repository is named for the overlay, never contacted
      "--artifacts",
      "https://127.0.0.1:9443/cinc/",
      "--out",
      out,
    ],
    { env: isolatedEnv(work) },
  );
  expect(r.code, r.stderr).toBe(0);
  objects = kustomize(join(out, "manifests"));
});

afterAll(async () => {
  await closeFixtures();
  await closeAgents();
});

function find(kind: string, name: string): Record<string, unknown> {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind} ${name} missing`);
  return o as unknown as Record<string, unknown>;
}

describe("bundle import --out DIR writes DIR/manifests", () => {
  it("renders to objects that all validate against the Kubernetes schemas", () => {
    expect(objects.length).toBeGreaterThan(8);
    for (const o of objects) validateObject(o);
  });

  it("egress to the registry and repository goes to the addresses and ports import used", () => {
    const [host, port] = tls.host.split(":");
    expect((find("NetworkPolicy", "allow-egress-registry").spec as { egress: unknown }).egress).toEqual([
      { to: [{ ipBlock: { cidr: `${host}/32` } }], ports: [{ protocol: "TCP", port: Number(port) }] },
    ]);
    expect((find("NetworkPolicy", "allow-egress-artifacts").spec as { egress: unknown }).egress).toEqual([
      { to: [{ ipBlock: { cidr: "127.0.0.1/32" } }], ports: [{ protocol: "TCP", port: 9443 }] },
    ]);
    expect(find("ConfigMap", "airgap-endpoints").data).toMatchObject({
      REGISTRY: `${tls.host}/${prefix}`,
      ARTIFACTS: "https://127.0.0.1:9443/cinc/",
    });
  });

  it("carries the CA and public key import trusted, and points the runner image at the internal registry", () => {
    const ca = find("Secret", "airgap-ca").data as Record<string, string>;
    expect(Buffer.from(ca["ca.crt"]!, "base64").toString()).toBe(
      readFileSync(needEnv("AIRGAP_TEST_CA"), "utf8"),
    );
    expect(find("ConfigMap", "airgap-signing-key").data).toEqual({
      "cosign.pub": readFileSync(join(work, "cosign.pub"), "utf8"),
    });
    const k = readFileSync(join(out, "manifests", "kustomization.yaml"), "utf8");
    expect(k).toContain(`newName: ${tls.host}/${prefix}/cinc-airgap/airgap`);
    expect(k).toContain(`newTag: ${VERSION}`);
  });
});
