/**
 * The Kubernetes manifests shipped in manifests/ and the overlay import renders from them: every
 * object validates against the Kubernetes OpenAPI schemas (offline), the NetworkPolicies mean
 * default deny with only the four named egress allowances, and RBAC is least privilege per approach.
 */
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { findShippedManifests, loadShippedManifests } from "../../src/pipeline/manifests.js";
import {
  ALL_COMPONENTS,
  type ManifestsOverlayInput,
  renderManifestsOverlay,
} from "../../src/targets/manifests.js";
import { validateObject } from "../helpers/k8s-schema.js";
import { type K8sObject, kustomizationDirs, kustomize, readObjects } from "../helpers/kustomize.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SHIPPED = join(ROOT, "manifests");

interface Peer {
  ipBlock?: { cidr: string; except?: string[] };
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
}
interface Policy {
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: Record<string, unknown>;
    policyTypes?: string[];
    ingress?: unknown[];
    egress?: { to?: Peer[]; ports?: { protocol?: string; port?: number | string }[] }[];
  };
}

/** Every egress the policies allow, as "peer → ports" strings; fails on an egress rule that allows everything. */
function egressAllowed(objects: K8sObject[]): string[] {
  const out: string[] = [];
  for (const o of objects.filter((x) => x.kind === "NetworkPolicy") as unknown as Policy[]) {
    for (const rule of o.spec.egress ?? []) {
      expect(
        rule.to?.length,
        `${o.metadata.name}: an egress rule without peers allows every destination`,
      ).toBeGreaterThan(0);
      expect(
        rule.ports?.length,
        `${o.metadata.name}: an egress rule without ports allows every port`,
      ).toBeGreaterThan(0);
      const ports = rule
        .ports!.map((p) => `${p.port}/${p.protocol ?? "TCP"}`)
        .sort()
        .join(",");
      for (const peer of rule.to!) {
        if (peer.ipBlock) {
          expect(peer.ipBlock.cidr).toMatch(/^(\d+\.\d+\.\d+\.\d+\/32|[0-9a-f:]+\/128)$/);
          out.push(`${o.metadata.name}: ${peer.ipBlock.cidr} → ${ports}`);
        } else {
          out.push(
            `${o.metadata.name}: ns ${JSON.stringify(peer.namespaceSelector?.matchLabels)} pods ${JSON.stringify(peer.podSelector?.matchLabels)} → ${ports}`,
          );
        }
      }
    }
  }
  return out.sort();
}

function checkDefaultDeny(objects: K8sObject[]): void {
  const policies = objects.filter((x) => x.kind === "NetworkPolicy") as unknown as Policy[];
  const deny = policies.filter((p) => p.metadata.name === "default-deny-all");
  expect(deny).toHaveLength(1);
  expect(deny[0]!.spec.podSelector).toEqual({});
  expect([...(deny[0]!.spec.policyTypes ?? [])].sort()).toEqual(["Egress", "Ingress"]);
  expect(deny[0]!.spec.ingress ?? []).toEqual([]);
  expect(deny[0]!.spec.egress ?? []).toEqual([]);
  for (const p of policies) {
    // nothing is allowed in, and every policy covers every pod of the namespace
    expect(p.spec.ingress ?? [], p.metadata.name).toEqual([]);
    expect(p.spec.podSelector, p.metadata.name).toEqual({});
    expect(p.metadata.namespace).toBe("cinc-scanner");
  }
}

const DNS = [
  'allow-egress-dns: ns {"kubernetes.io/metadata.name":"kube-system"} pods {"k8s-app":"kube-dns"} → 53/TCP,53/UDP',
];
const API = ["allow-egress-apiserver: 10.96.0.1/32 → 443/TCP,6443/TCP"];

function byKind(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind} ${name} is not rendered`);
  return o;
}

function roleRules(objects: K8sObject[], name: string): string[] {
  const role = byKind(objects, "Role", name) as unknown as {
    rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  };
  return role.rules
    .flatMap((r) =>
      r.resources.map((res) => `${r.apiGroups.join(",")}:${res}:${[...r.verbs].sort().join(",")}`),
    )
    .sort();
}

function writeTree(files: Map<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "airgap-manifests-"));
  for (const [path, text] of files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function overlay(
  over: Partial<ManifestsOverlayInput> = {},
): Promise<{ dir: string; files: Map<string, string> }> {
  const files = renderManifestsOverlay({
    shipped: await loadShippedManifests(),
    registryTarget: "registry.internal:5000/scanner",
    registry: { host: "registry.internal", port: 5000, addresses: ["10.20.0.5", "fd00::5"] },
    artifacts: {
      url: "s3://cinc-artifacts/scanner",
      s3Endpoint: "https://s3.internal:9443",
      endpoint: { host: "s3.internal", port: 9443, addresses: ["10.20.0.7"] },
    },
    runnerImage: { repository: "registry.internal:5000/scanner/cinc-airgap/airgap", tag: "0.1.0" },
    caPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    publicKeyPem: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    components: ALL_COMPONENTS,
    ...over,
  });
  return { dir: join(writeTree(files), "manifests"), files };
}

describe("shipped manifests", () => {
  it("are found relative to the package, as an installed package finds them", () => {
    expect(findShippedManifests()).toBe(SHIPPED);
    expect(findShippedManifests(join(ROOT, "dist", "pipeline"))).toBe(SHIPPED);
  });

  it("every object in every file validates against the Kubernetes OpenAPI schemas", () => {
    let n = 0;
    for (const dir of kustomizationDirs(SHIPPED)) {
      for (const f of readdirSync(dir).filter((x) => x.endsWith(".yaml") && x !== "kustomization.yaml")) {
        for (const o of readObjects(join(dir, f))) {
          validateObject(o);
          n++;
        }
      }
    }
    expect(n).toBe(21);
  });

  it("the base with every component renders valid objects, all in namespace cinc-scanner", () => {
    const objects = [
      ...kustomize(join(SHIPPED, "base")),
      ...ALL_COMPONENTS.flatMap((c) => kustomize(join(SHIPPED, "components", c), "Component")),
    ];
    for (const o of objects) validateObject(o);
    const top = kustomize(SHIPPED);
    for (const o of top) {
      validateObject(o);
      if (o.kind !== "Namespace")
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe("cinc-scanner");
    }
    checkDefaultDeny(top);
    expect(egressAllowed(top)).toEqual(
      [
        ...DNS,
        ...API,
        "allow-egress-registry: 192.0.2.10/32 → 443/TCP",
        "allow-egress-artifacts: 192.0.2.11/32 → 443/TCP",
      ].sort(),
    );
  });

  it("RBAC is one Role per approach, least privilege, bound to that approach's service account only", () => {
    const all = ALL_COMPONENTS.flatMap((c) => kustomize(join(SHIPPED, "components", c), "Component"));
    expect(all.filter((o) => o.kind.startsWith("Cluster"))).toEqual([]);
    expect(roleRules(all, "cinc-scanner-kubernetes-api")).toEqual([":pods/exec:create", ":pods:get,list"]);
    expect(roleRules(all, "cinc-scanner-debug-container")).toEqual([
      ":pods/ephemeralcontainers:get,patch,update",
      ":pods/exec:create",
      ":pods/log:get",
      ":pods:get,list",
    ]);
    expect(roleRules(all, "cinc-scanner-sidecar")).toEqual([":pods:get,list"]);
    for (const name of [
      "cinc-scanner-kubernetes-api",
      "cinc-scanner-debug-container",
      "cinc-scanner-sidecar",
    ]) {
      const b = byKind(all, "RoleBinding", name) as unknown as {
        subjects: { kind: string; name: string; namespace: string }[];
        roleRef: { kind: string; name: string };
      };
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name, namespace: "cinc-scanner" }]);
      expect(b.roleRef).toMatchObject({ kind: "Role", name });
      byKind(all, "ServiceAccount", name);
    }
  });
});

describe("the overlay import writes (DIR/manifests)", () => {
  it("renders valid objects, with egress only to DNS, the API server, and the registry and repository import used", async () => {
    const { dir } = await overlay();
    const objects = kustomize(dir);
    for (const o of objects) validateObject(o);
    checkDefaultDeny(objects);
    expect(egressAllowed(objects)).toEqual(
      [
        ...DNS,
        ...API,
        "allow-egress-registry: 10.20.0.5/32 → 5000/TCP",
        "allow-egress-registry: fd00::5/128 → 5000/TCP",
        "allow-egress-artifacts: 10.20.0.7/32 → 9443/TCP",
      ].sort(),
    );
    expect(byKind(objects, "ConfigMap", "airgap-endpoints").data).toEqual({
      REGISTRY: "registry.internal:5000/scanner",
      ARTIFACTS: "s3://cinc-artifacts/scanner",
      AWS_ENDPOINT_URL_S3: "https://s3.internal:9443",
      BUNDLE: "/bundle/scanner-bundle.tar",
    });
  });

  it("the import Job runs the runner image from the internal registry, trusting the CA Secret it mounts", async () => {
    const { dir } = await overlay();
    const objects = kustomize(dir);
    const job = byKind(objects, "Job", "airgap-import") as unknown as {
      metadata: { namespace: string };
      spec: {
        template: {
          spec: {
            containers: { image: string; args: string[]; securityContext: Record<string, unknown> }[];
            volumes: { name: string; secret?: { secretName: string; optional?: boolean } }[];
            automountServiceAccountToken: boolean;
          };
        };
      };
    };
    const pod = job.spec.template.spec;
    expect(pod.containers[0]!.image).toBe("registry.internal:5000/scanner/cinc-airgap/airgap:0.1.0");
    expect(pod.containers[0]!.args).toEqual(
      expect.arrayContaining(["--ca-file", "--require-signature", "--key"]),
    );
    expect(pod.containers[0]!.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.automountServiceAccountToken).toBe(false);
    const ca = pod.volumes.find((v) => v.name === "ca")!;
    expect(ca.secret).toMatchObject({ secretName: "airgap-ca" });
    expect(ca.secret!.optional).not.toBe(true);
    // the CA and key import used become the Secret and ConfigMap the Job mounts
    const secret = byKind(objects, "Secret", "airgap-ca") as unknown as { data: Record<string, string> };
    expect(Buffer.from(secret.data["ca.crt"]!, "base64").toString()).toContain("BEGIN CERTIFICATE");
    expect(byKind(objects, "ConfigMap", "airgap-signing-key").data).toEqual({
      "cosign.pub": expect.stringContaining("BEGIN PUBLIC KEY"),
    });
    const pinned = kustomize(
      (
        await overlay({
          runnerImage: {
            repository: "r.internal/x/cinc-airgap/airgap",
            tag: "0.1.0",
            digest: `sha256:${"a".repeat(64)}`,
          },
        })
      ).dir,
    );
    const pinnedJob = byKind(pinned, "Job", "airgap-import") as unknown as typeof job;
    expect(pinnedJob.spec.template.spec.containers[0]!.image).toBe(
      `r.internal/x/cinc-airgap/airgap@sha256:${"a".repeat(64)}`,
    );
  });

  it("the sharded import is an Indexed Job of N pods, each running --shard auto/N; --import-job-shards sets N in all three places", async () => {
    type IndexedJob = {
      spec: {
        completionMode: string;
        completions: number;
        parallelism: number;
        template: {
          spec: {
            containers: {
              image: string;
              args: string[];
              envFrom: { configMapRef?: { name: string } }[];
            }[];
            volumes: { name: string; persistentVolumeClaim?: { claimName: string; readOnly: boolean } }[];
          };
        };
      };
    };
    const shipped = kustomize(join(SHIPPED, "components", "import-job-sharded"), "Component");
    const { dir, files } = await overlay({ components: ["kubernetes-api"], importJobShards: 6 });
    const objects = kustomize(dir);
    for (const o of objects) validateObject(o);
    checkDefaultDeny(objects);
    expect(files.get("manifests/kustomization.yaml")).toMatch(/^ {2}- components\/import-job-sharded$/m);
    for (const [objs, n] of [
      [shipped, 4],
      [objects, 6],
    ] as const) {
      const job = byKind([...objs], "Job", "airgap-import-sharded") as unknown as IndexedJob;
      expect(job.spec).toMatchObject({ completionMode: "Indexed", completions: n, parallelism: n });
      const container = job.spec.template.spec.containers[0]!;
      const args = container.args;
      expect(args.slice(0, 5)).toEqual(["bundle", "import", "$(BUNDLE)", "--shard", "auto/$(SHARDS)"]);
      expect(args).toEqual(expect.arrayContaining(["--require-signature", "--key", "--ca-file"]));
      // SHARDS comes from the ConfigMap the pod reads its environment from, and equals completions
      expect(container.envFrom.map((e) => e.configMapRef?.name)).toContain("airgap-import-shards");
      expect(byKind([...objs], "ConfigMap", "airgap-import-shards").data).toEqual({ SHARDS: String(n) });
      expect(job.spec.template.spec.volumes.find((v) => v.name === "bundle")!.persistentVolumeClaim).toEqual({
        claimName: "airgap-bundle",
        readOnly: true,
      });
    }
    const job = byKind(objects, "Job", "airgap-import-sharded") as unknown as IndexedJob;
    expect(job.spec.template.spec.containers[0]!.image).toBe(
      "registry.internal:5000/scanner/cinc-airgap/airgap:0.1.0",
    );
    // without the option the component is listed, not enabled
    const plain = await overlay({ components: ["kubernetes-api"] });
    expect(plain.files.get("manifests/kustomization.yaml")).toMatch(/#\s+components\/import-job-sharded/);
    expect(kustomize(plain.dir).some((o) => o.kind === "Job")).toBe(false);
  });

  it("enables only the components asked for, and lists the others", async () => {
    const { dir, files } = await overlay({ components: ["kubernetes-api"] });
    const objects = kustomize(dir);
    expect(objects.filter((o) => o.kind === "Role").map((o) => o.metadata.name)).toEqual([
      "cinc-scanner-kubernetes-api",
    ]);
    expect(objects.some((o) => o.kind === "Job")).toBe(false);
    expect(files.get("manifests/kustomization.yaml")).toMatch(/#\s+components\/debug-container/);
  });

  it("without an artifact repository the artifacts allowance is left out; an unresolved registry keeps the placeholder and says so", async () => {
    const { dir, files } = await overlay({
      artifacts: undefined,
      registry: { host: "registry.internal", port: 5000, addresses: [] },
      caPem: undefined,
      components: ["kubernetes-api"],
    });
    const objects = kustomize(dir);
    for (const o of objects) validateObject(o);
    checkDefaultDeny(objects);
    expect(egressAllowed(objects)).toEqual(
      [...DNS, ...API, "allow-egress-registry: 192.0.2.10/32 → 443/TCP"].sort(),
    );
    const k = files.get("manifests/kustomization.yaml")!;
    expect(k).toMatch(/NOTE: registry\.internal did not resolve/);
    expect(k).toMatch(/NOTE: import was given no --ca-file/);
  });
});
