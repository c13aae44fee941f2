/**
 * The kustomize overlay `bundle import --out DIR` writes to DIR/manifests/: a copy of the shipped
 * manifests (base/ and components/) plus a kustomization.yaml and patches that fill in the registry
 * and artifact repository import used, their addresses for the egress NetworkPolicies, the runner
 * image in the internal registry, and the CA and signing key import trusted. Pure: the caller
 * reads files and resolves addresses.
 */
import { isIP } from "node:net";
import { stringify } from "yaml";

export interface Endpoint {
  /** Host name or address, without port. */
  host: string;
  port: number;
  /** The addresses the host resolved to when import ran; empty when it could not be resolved. */
  addresses: string[];
}

export interface ManifestsOverlayInput {
  /** The shipped manifests/ tree: path relative to manifests/ → text. Only base/ and components/ are used. */
  shipped: Map<string, string>;
  /** The registry target as import used it: HOST[:PORT][/PREFIX]. */
  registryTarget: string;
  registry: Endpoint;
  /** `s3://BUCKET/PREFIX` or `https://HOST/PATH/`, when import published to an artifact repository. */
  artifacts?: { url: string; s3Endpoint?: string; endpoint?: Endpoint };
  /** The runner image in the internal registry: its repository and a digest when the bundle carried it. */
  runnerImage: { repository: string; tag: string; digest?: string };
  /** PEM of the CA import trusted for the registry and repository; becomes the airgap-ca Secret. */
  caPem?: string;
  /** PEM of the public key the bundle was verified with; becomes the airgap-signing-key ConfigMap. */
  publicKeyPem?: string;
  /** Components enabled in the overlay (others are listed, commented out). */
  components?: string[];
  /**
   * Enable components/import-job-sharded with this many workers: the Job's completions and
   * parallelism and the N of its `--shard auto/N` (ConfigMap airgap-import-shards).
   */
  importJobShards?: number;
}

export const MANIFESTS_DIR = "manifests";
export const NAMESPACE = "cinc-scanner";
export const RUNNER_IMAGE = "cinc-airgap/airgap";
export const ALL_COMPONENTS = [
  "kubernetes-api",
  "debug-container",
  "sidecar",
  "import-job",
  "import-job-sharded",
];
export const SHARDED_IMPORT_COMPONENT = "import-job-sharded";
const DEFAULT_COMPONENTS = ["kubernetes-api"];

/** A CIDR for one address: /32 for IPv4, /128 for IPv6. */
export function hostCidr(address: string): string {
  const family = isIP(address);
  if (family === 0) throw new Error(`${address} is not an IP address`);
  return `${address}/${family === 4 ? 32 : 128}`;
}

function egressPatch(name: string, endpoint: Endpoint): string {
  const addresses = [...new Set(endpoint.addresses)].sort();
  return stringify({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name },
    spec: {
      egress: [
        {
          to: addresses.map((a) => ({ ipBlock: { cidr: hostCidr(a) } })),
          ports: [{ protocol: "TCP", port: endpoint.port }],
        },
      ],
    },
  });
}

function deletePatch(kind: string, apiVersion: string, name: string): string {
  return stringify({ $patch: "delete", apiVersion, kind, metadata: { name } });
}

/** The overlay's files, keyed by path relative to the --out folder (all under manifests/). */
export function renderManifestsOverlay(input: ManifestsOverlayInput): Map<string, string> {
  const files = new Map<string, string>();
  for (const [path, text] of [...input.shipped].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (path.startsWith("base/") || path.startsWith("components/"))
      files.set(`${MANIFESTS_DIR}/${path}`, text);
  }
  const notes: string[] = [];
  const patches: string[] = [];
  const patch = (file: string, text: string) => {
    files.set(`${MANIFESTS_DIR}/patches/${file}`, text);
    patches.push(`patches/${file}`);
  };

  const data: Record<string, string> = { REGISTRY: input.registryTarget };
  if (input.artifacts) {
    data.ARTIFACTS = input.artifacts.url;
    if (input.artifacts.s3Endpoint) data.AWS_ENDPOINT_URL_S3 = input.artifacts.s3Endpoint;
  }
  patch(
    "endpoints.yaml",
    stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "airgap-endpoints" }, data }),
  );

  if (input.registry.addresses.length > 0) {
    patch("egress-registry.yaml", egressPatch("allow-egress-registry", input.registry));
  } else {
    notes.push(
      `${input.registry.host} did not resolve when import ran: allow-egress-registry keeps the base's placeholder (no traffic); patch it with the registry's addresses`,
    );
  }
  const art = input.artifacts?.endpoint;
  if (!input.artifacts) {
    patch(
      "no-artifacts-egress.yaml",
      deletePatch("NetworkPolicy", "networking.k8s.io/v1", "allow-egress-artifacts"),
    );
    notes.push("no artifact repository was given to import: allow-egress-artifacts is left out");
  } else if (art && art.addresses.length > 0) {
    patch("egress-artifacts.yaml", egressPatch("allow-egress-artifacts", art));
  } else {
    notes.push(
      `the artifact repository${art ? ` ${art.host}` : ""} could not be resolved to addresses when import ran: allow-egress-artifacts keeps the base's placeholder (no traffic); patch it with the repository's addresses`,
    );
  }

  const enabled = [...(input.components ?? DEFAULT_COMPONENTS)];
  if (input.importJobShards !== undefined) {
    const n = input.importJobShards;
    if (!Number.isSafeInteger(n) || n < 1)
      throw new Error(`importJobShards must be a whole number >= 1, not ${n}`);
    if (!enabled.includes(SHARDED_IMPORT_COMPONENT)) enabled.push(SHARDED_IMPORT_COMPONENT);
    // the three places N lives, set together (see components/import-job-sharded)
    patch(
      "import-job-shards.yaml",
      stringify({
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "airgap-import-sharded" },
        spec: { completions: n, parallelism: n },
      }),
    );
    patch(
      "import-job-shards-configmap.yaml",
      stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "airgap-import-shards" },
        data: { SHARDS: String(n) },
      }),
    );
  }
  const image: Record<string, string> = { name: RUNNER_IMAGE, newName: input.runnerImage.repository };
  if (input.runnerImage.digest) image.digest = input.runnerImage.digest;
  else image.newTag = input.runnerImage.tag;

  const doc: Record<string, unknown> = {
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    namespace: NAMESPACE,
    resources: ["base"],
    components: enabled.map((c) => `components/${c}`),
    images: [image],
    patches: patches.map((path) => ({ path })),
  };
  if (input.caPem) {
    files.set(`${MANIFESTS_DIR}/ca.crt`, input.caPem);
    doc.secretGenerator = [
      { name: "airgap-ca", files: ["ca.crt"], options: { disableNameSuffixHash: true } },
    ];
  } else {
    notes.push(
      "import was given no --ca-file: create Secret airgap-ca (key ca.crt) in cinc-scanner with the CA of the registry and repository before enabling components/import-job",
    );
  }
  if (input.publicKeyPem) {
    files.set(`${MANIFESTS_DIR}/cosign.pub`, input.publicKeyPem);
    doc.configMapGenerator = [
      { name: "airgap-signing-key", files: ["cosign.pub"], options: { disableNameSuffixHash: true } },
    ];
  }
  const others = ALL_COMPONENTS.filter((c) => !enabled.includes(c));
  const header = [
    "# Written by `airgap bundle import`: the shipped base (base/, components/) with the registry,",
    "# artifact repository and addresses this import used. Apply with: kubectl apply -k <this folder>",
    "# Egress to the API server is the base's default (10.96.0.1/32 on 443 and 6443): check it against",
    "# base/networkpolicy-allow-apiserver.yaml and patch allow-egress-apiserver if your cluster differs.",
    "# Enable the components of the scanning approaches your site uses:",
    ...others.map((c) => `#   components/${c}`),
    ...notes.map((n) => `# NOTE: ${n}`),
  ];
  files.set(`${MANIFESTS_DIR}/kustomization.yaml`, `${header.join("\n")}\n${stringify(doc)}`);
  return files;
}
