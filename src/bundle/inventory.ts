import { IntegrityError } from "../errors.js";

/**
 * Profiles, files, gems and charts live in the bundle under this pseudo registry
 * (`localhost/profiles/NAME:VERSION`, `localhost/files/NAME:PLATFORM`, …): import drops the host like
 * any other, so they land under the target's prefix.
 */
export const ARTIFACT_REPOSITORY_HOST = "localhost";

/** `bundle.json`: what a bundle holds and where it came from. Part of the bundle format contract. */
export const INVENTORY_FORMAT = "cinc-airgap-bundle/v1";
export const INVENTORY_FILE = "bundle.json";

export interface CarriedExtra {
  kind: "sig" | "att" | "sbom" | "referrer";
  /** The manifest it is about (the image, or one of its platform manifests). */
  subject: string;
  digest: string;
  mediaType: string;
  /** cosign tags only: `sha256-<hex>.sig` etc. */
  tag?: string;
  artifactType?: string;
}

export interface SignaturePolicyResult {
  rule: string;
  key: string;
  verified: boolean;
  /** How it was verified: cosign simple-signing tag, or Sigstore bundle referrer. */
  via?: string;
  detail?: string;
}

interface ItemBase {
  /** Full normalized name, also the `org.opencontainers.image.ref.name` of its root in index.json. */
  name: string;
  /** The reference or URL as written in the config. */
  source: string;
  /** Digest of the root in the bundle. */
  digest: string;
  mediaType: string;
  /** Bytes of every blob of the item, manifests included (shared blobs counted in each item). */
  size: number;
  /** Every blob of the item's graph, children before parents; lets a one-pass import place blobs. */
  blobs: string[];
  /** The manifests and indexes among `blobs`, with their media types (a one-pass import pushes them as manifests). */
  manifests: { digest: string; mediaType: string; size: number }[];
}

export interface ImageItem extends ItemBase {
  kind: "image";
  /** Tag of the source reference, when it had one. */
  tag?: string;
  /** Digest the registry served for the reference; differs from `digest` when platforms were filtered. */
  sourceDigest: string;
  /** Platforms carried (empty for single-platform images with unknown platform). */
  platforms: string[];
  /** Platforms the source index offered, when it was an index. */
  sourcePlatforms?: string[];
  carried: CarriedExtra[];
  policy?: SignaturePolicyResult[];
  /**
   * Set on an image create built rather than pulled (the runner image): the base it was built from
   * (pinned), the file its one added layer holds, and that layer's digest.
   */
  built?: { base: string; baseDigest: string; file: string; layer: string };
}

export interface ProfileItem extends ItemBase {
  kind: "profile";
  /** `name` and `version` of its inspec.yml; sha256, size and file name of the NAME-VERSION.tar.gz layer. */
  profile: { name: string; version: string; sha256: string; size: number; file: string };
  /** The source pinned: `{git, ref, relative_path?}`, `{url, sha256}`, `{path, sha256}` or `{oci, digest}`. */
  pinned: Record<string, unknown>;
  /** The vendored dependency tree, as inspec.lock records it. */
  dependencies: unknown[];
}

export interface FileItem extends ItemBase {
  kind: "file";
  file: {
    name: string;
    /** `os/arch[/variant]`, or `any` for a file that is the same for every platform. */
    platform: string;
    /** Where it was downloaded from (credentials removed). */
    url: string;
    sha256: string;
    size: number;
    /** false when the config gave no sha256 and `--allow-unpinned` recorded the one downloaded. */
    pinned: boolean;
  };
}

export interface GemItem extends ItemBase {
  kind: "gem";
  gem: {
    name: string;
    version: string;
    /** `ruby` for pure-Ruby gems, else the gem's platform (e.g. `x86_64-linux`). */
    platform: string;
    /** sha256 and size of NAME-VERSION[-PLATFORM].gem, as the gem source's compact index lists it. */
    sha256: string;
    size: number;
    /** quick/Marshal.4.8/NAME-VERSION[-PLATFORM].gemspec.rz, pinned as downloaded. */
    gemspec: { sha256: string; size: number };
    /** The gem server it came from. */
    source: string;
    /** Runtime dependencies, requirement as RubyGems writes it (">= 1.0, < 2"). */
    dependencies: { name: string; requirement: string }[];
    /** Names of the carried gems that depend on this one; empty for a gem the config names. */
    requiredBy: string[];
    /** Gems it needs that the target provides (the published source lists them with no versions). */
    providedTree?: string[];
    /** Required Ruby / RubyGems versions, as the index lists them. */
    ruby?: string[];
    rubygems?: string[];
  };
}

/** An image a chart's values name, where, and in what shape (what the import's values file rewrites). */
export interface ChartImage {
  /** The normalized reference the values name, e.g. docker.io/library/busybox:1.37. */
  ref: string;
  /** The digest it was pinned to at create (it is in the bundle as an image item). */
  digest?: string;
  /** Values keys from the top chart down: [topChartName, subchartKey, …]. */
  chartPath: string[];
  /** Where the image is in that chart's values. */
  valuesPath: (string | number)[];
  form: "string" | "map";
  latest: boolean;
  fields?: { registry?: string; repository: string; tag?: string; digest?: string };
  list?: { path: (string | number)[]; value: unknown[] };
}

export interface ChartItem extends ItemBase {
  kind: "chart";
  chart: {
    name: string;
    version: string;
    /** sha256 and size of the packaged chart NAME-VERSION.tgz (the Helm chart layer). */
    sha256: string;
    size: number;
    /** How the source was pinned: `{repo, url, digest}`, `{git, commit, path}`, `{path, sha256}` or `{oci, digest}`. */
    pinned: Record<string, unknown>;
    /** Chart.yaml as parsed (for the Helm repository index import writes). */
    metadata: Record<string, unknown>;
    /** Images its values name (added to the bundle with `images: auto`). */
    images: ChartImage[];
  };
}

export type InventoryItem = ImageItem | ProfileItem | FileItem | GemItem | ChartItem;

export interface Inventory {
  format: typeof INVENTORY_FORMAT;
  tool: { name: string; version: string };
  created: string;
  metadata: { name: string; version: string; description?: string };
  config: { file: string; sha256: string; text: string };
  platforms: string[];
  items: InventoryItem[];
  totals: { items: number; blobs: number; bytes: number };
  /**
   * Present for incremental bundles (`create --since BASE`): layers and configs the base bundle
   * carried are left out; the target must hold them already (import checks before it pushes).
   */
  since?: BaseBundleInfo;
}

/** What an incremental bundle says about the bundle it builds on. */
export interface BaseBundleInfo {
  bundle: string;
  name: string;
  version: string;
  created: string;
  omittedBlobs: string[];
  /**
   * The base bundle's items that carried the omitted blobs (by item name, which import maps to a
   * target repository as it mapped the base), so import can mount a blob from the repository the
   * base put it in. Absent in bundles from before it was recorded: import then looks only in the
   * repositories of this bundle's own items.
   */
  holders?: { name: string; blobs: string[] }[];
}

export function parseInventory(bytes: Buffer, item = INVENTORY_FILE): Inventory {
  let inv: Inventory;
  try {
    inv = JSON.parse(bytes.toString("utf8")) as Inventory;
  } catch (err) {
    throw new IntegrityError("MALFORMED", `${item} is not valid JSON`, item, { cause: err });
  }
  if (inv?.format !== INVENTORY_FORMAT || !Array.isArray(inv.items)) {
    throw new IntegrityError("MALFORMED", `${item} is not a ${INVENTORY_FORMAT} inventory`, item);
  }
  checkShape(inv, item);
  return inv;
}

/**
 * The fields every reader relies on have the types they claim. inspect, diff and create --since
 * read bundle.json unverified: a number where a string belongs must be a clear MALFORMED, not a
 * TypeError halfway through printing.
 */
function checkShape(inv: Inventory, file: string): void {
  const bad = (where: string, what: string): never => {
    throw new IntegrityError("MALFORMED", `${file}: ${where} is not ${what}`, file);
  };
  const isStr = (v: unknown) => typeof v === "string";
  const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
  const strings = (v: unknown) => Array.isArray(v) && v.every(isStr);
  if (typeof inv.metadata !== "object" || inv.metadata === null) bad("metadata", "an object");
  if (!isStr(inv.metadata.name) || !isStr(inv.metadata.version)) bad("metadata.name/version", "text");
  if (!isStr(inv.created)) bad("created", "text");
  if (typeof inv.tool !== "object" || inv.tool === null || !isStr(inv.tool.name) || !isStr(inv.tool.version))
    bad("tool", "a name and version");
  if (
    typeof inv.totals !== "object" ||
    inv.totals === null ||
    ![inv.totals.items, inv.totals.blobs, inv.totals.bytes].every(isNum)
  )
    bad("totals", "three counts");
  for (const [i, it] of inv.items.entries()) {
    const at = `items[${i}]`;
    if (typeof it !== "object" || it === null) bad(at, "an object");
    for (const k of ["kind", "name", "source", "digest"] as const)
      if (!isStr(it[k])) bad(`${at}.${k}`, "text");
    if (!isNum(it.size)) bad(`${at}.size`, "a byte count");
    if (!strings(it.blobs)) bad(`${at}.blobs`, "a list of digests");
    if (it.kind === "image" && (!strings(it.platforms) || !Array.isArray(it.carried)))
      bad(`${at}.platforms/carried`, "lists");
  }
  if (inv.since !== undefined) {
    const since = inv.since;
    if (typeof since !== "object" || since === null) bad("since", "an object");
    if (!strings(since.omittedBlobs)) bad("since.omittedBlobs", "a list of digests");
    if (
      since.holders !== undefined &&
      !(
        Array.isArray(since.holders) &&
        since.holders.every((h) => typeof h === "object" && h !== null && isStr(h.name) && strings(h.blobs))
      )
    )
      bad("since.holders", "a list of item names with their digests");
  }
}
