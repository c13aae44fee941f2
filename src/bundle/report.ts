/**
 * `bundle report`: the document a transfer review board signs off. The bundle is verified first
 * (the same checks as `bundle verify`); only what verified is read, and bundle.json and SHA256SUMS are
 * re-checked at the moment they are read. Rendering is pure: the same data gives Markdown, a
 * self-contained HTML page, or JSON.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { IntegrityError } from "../errors.js";
import { sha256Hex } from "../oci/digest.js";
import type { ArtifactRepositoryOptions } from "../store/artifacts.js";
import { type BundleReader, openBundle } from "./archive/reader.js";
import { CHECKSUMS_FILE, parseChecksums, SIGNATURE_FILES } from "./checksums.js";
import { INVENTORY_FILE, parseInventory } from "./inventory.js";
import { loadPublicKey } from "./keys.js";
import { METADATA_MAX_BYTES } from "./limits.js";
import { verifyChecksumsSignature } from "./signing.js";
import { SequentialVerifier, type VerifyReport, verifyBundle } from "./verify.js";

/** Fields every item has, shown in the summary table rather than among its details. */
const COMMON_FIELDS = new Set([
  "kind",
  "name",
  "source",
  "digest",
  "mediaType",
  "size",
  "blobs",
  "manifests",
]);
/** Fields rendered in their own columns or sections. */
const PLATFORM_FIELDS = ["platforms"];

export interface SignatureCheck {
  rule: string;
  /** The key file or signer identity the signature was checked against at create. */
  key: string;
  verified: boolean;
  via?: string;
  detail?: string;
}

export interface CarriedArtifact {
  kind: string;
  subject: string;
  digest: string;
  mediaType: string;
  tag?: string;
  artifactType?: string;
}

export interface ReportItem {
  kind: string;
  name: string;
  source: string;
  digest: string;
  mediaType: string;
  size: number;
  blobs: number;
  platforms: string[];
  /** Upstream signature checks made at create (the `verify:` policy), empty when none applied. */
  signatureChecks: SignatureCheck[];
  /** Signatures, attestations, SBOMs and other referrers carried with the item. */
  carried: CarriedArtifact[];
  /** Every other field of the inventory entry, as recorded (profile pins, dependency tree, chart images, gem and file pins, …). */
  details: Record<string, unknown>;
}

export interface BundleReportData {
  bundle: string;
  format: string;
  tool: { name: string; version: string };
  created: string;
  metadata: { name: string; version: string; description?: string };
  config: { file: string; sha256: string };
  platforms: string[];
  verification: Pick<VerifyReport, "ok" | "signature" | "signed" | "files" | "blobs" | "bytes" | "warnings">;
  /** sha256 of the SHA256SUMS file: the one value that pins every byte of the bundle. */
  checksums: { file: string; sha256: string; entries: number };
  signatureFiles: string[];
  /** sha256 of the DER SubjectPublicKeyInfo of the key the signature was verified with (as cosign and openssl give it). */
  signingKey?: { fingerprint: string };
  items: ReportItem[];
  /** Files listed in SHA256SUMS outside the OCI layout and the bundle's own metadata (e.g. tools/). */
  extraFiles: { path: string; sha256: string; size?: number }[];
  totals: {
    items: number;
    blobs: number;
    bytes: number;
    files: number;
    byKind: { kind: string; items: number; bytes: number }[];
  };
  /** Incremental bundles: the base bundle, and how many blobs were left out because it carried them. */
  since?: { bundle: string; name: string; version: string; created: string; omittedBlobs: number };
}

export interface ReportOptions {
  publicKeyPem?: string;
  requireSignature?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  /** Endpoint, credentials and TLS for an `s3://` bundle: the artifact repository's settings. */
  s3?: ArtifactRepositoryOptions;
}

/** sha256 of a public key's DER SubjectPublicKeyInfo: `openssl pkey -pubin -outform DER | sha256sum`. */
export function publicKeyFingerprint(pem: string): string {
  const der = loadPublicKey(pem).export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

function refuse(report: VerifyReport, input: string): never {
  const first = report.problems[0];
  const more = report.problems.length > 1 ? ` (and ${report.problems.length - 1} more problems)` : "";
  throw new IntegrityError(
    first?.code ?? "MALFORMED",
    `${input} does not verify, so no report is written: ${first ? `${first.item}: ${first.message}` : "unknown problem"}${more}; run airgap bundle verify for the full list`,
    first?.item ?? input,
  );
}

interface VerifiedHead {
  report: VerifyReport;
  sums: Buffer;
  inventory: Buffer;
  sizes: Map<string, number>;
}

/** Seekable bundles: the parallel verify pass, then SHA256SUMS and bundle.json re-checked as they are read. */
async function verifiedHeadSeekable(
  reader: BundleReader,
  input: string,
  opts: ReportOptions,
): Promise<VerifiedHead> {
  const report = await verifyBundle(reader, opts);
  if (!report.ok) refuse(report, input);
  const sums = await reader.readSmall(CHECKSUMS_FILE, METADATA_MAX_BYTES);
  if (opts.publicKeyPem) {
    const sig = (await reader.readSmall(SIGNATURE_FILES[0]!, 64 * 1024)).toString("utf8");
    if (!verifyChecksumsSignature(sums, sig, loadPublicKey(opts.publicKeyPem))) {
      throw new IntegrityError(
        "SIGNATURE_INVALID",
        `${CHECKSUMS_FILE} changed after it was verified`,
        CHECKSUMS_FILE,
      );
    }
  }
  const expected = parseChecksums(sums.toString("utf8")).get(INVENTORY_FILE);
  const inventory = await reader.readSmall(INVENTORY_FILE, METADATA_MAX_BYTES);
  if (expected === undefined || sha256Hex(inventory) !== expected) {
    throw new IntegrityError(
      "CHECKSUM_MISMATCH",
      `${INVENTORY_FILE} changed after it was verified`,
      INVENTORY_FILE,
    );
  }
  const sizes = new Map((await reader.list()).map((f) => [f.path, f.size]));
  return { report, sums, inventory, sizes };
}

async function collect(stream: Readable, max: number, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > max) throw new IntegrityError("MALFORMED", `${path} is over the ${max}-byte limit`, path);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Streams (stdin, tar.zst): one verifying pass that keeps SHA256SUMS and bundle.json as they pass
 * through the verifier; they are used only when the whole pass verified.
 */
async function verifiedHeadSequential(
  reader: BundleReader,
  input: string,
  opts: ReportOptions,
): Promise<VerifiedHead> {
  const v = new SequentialVerifier(opts);
  const kept = new Map<string, Buffer>();
  const sizes = new Map<string, number>();
  try {
    for await (const entry of reader.entries(opts.signal)) {
      sizes.set(entry.path, entry.size);
      let s: Readable;
      try {
        s = v.accept(entry);
      } catch (err) {
        if (err instanceof IntegrityError) break;
        throw err;
      }
      try {
        if (entry.path === CHECKSUMS_FILE || entry.path === INVENTORY_FILE) {
          kept.set(entry.path, await collect(s, METADATA_MAX_BYTES, entry.path));
        } else {
          for await (const _ of s) {
            // hashed inside the verifier's stream
          }
        }
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        if (err.code === "TRUNCATED" || err.code === "PATH_ESCAPE" || err.code === "MALFORMED") {
          v.addProblem(err, entry.path);
        }
      }
    }
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    v.interrupt(err);
  }
  const report = v.finish();
  if (!report.ok) refuse(report, input);
  const sums = kept.get(CHECKSUMS_FILE);
  const inventory = kept.get(INVENTORY_FILE);
  if (!sums || !inventory) {
    throw new IntegrityError("MISSING_FILE", `${input} has no ${INVENTORY_FILE}`, INVENTORY_FILE);
  }
  return { report, sums, inventory, sizes };
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function reportItem(raw: Record<string, unknown>): ReportItem {
  const details: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (COMMON_FIELDS.has(k) || PLATFORM_FIELDS.includes(k) || k === "carried" || k === "policy") continue;
    details[k] = v;
  }
  const platforms = Array.isArray(raw.platforms) ? raw.platforms.map(String) : [];
  const checks = Array.isArray(raw.policy) ? (raw.policy as Record<string, unknown>[]) : [];
  const carried = Array.isArray(raw.carried) ? (raw.carried as Record<string, unknown>[]) : [];
  return {
    kind: str(raw.kind) || "unknown",
    name: str(raw.name),
    source: str(raw.source),
    digest: str(raw.digest),
    mediaType: str(raw.mediaType),
    size: typeof raw.size === "number" ? raw.size : 0,
    blobs: Array.isArray(raw.blobs) ? raw.blobs.length : 0,
    platforms,
    signatureChecks: checks.map((c) => ({
      rule: str(c.rule),
      key: str(c.key),
      verified: c.verified === true,
      ...(c.via !== undefined ? { via: str(c.via) } : {}),
      ...(c.detail !== undefined ? { detail: str(c.detail) } : {}),
    })),
    carried: carried.map((c) => ({
      kind: str(c.kind),
      subject: str(c.subject),
      digest: str(c.digest),
      mediaType: str(c.mediaType),
      ...(c.tag !== undefined ? { tag: str(c.tag) } : {}),
      ...(c.artifactType !== undefined ? { artifactType: str(c.artifactType) } : {}),
    })),
    details,
  };
}

const OWN_FILES = new Set([CHECKSUMS_FILE, INVENTORY_FILE, "index.json", "oci-layout", ...SIGNATURE_FILES]);

/** Builds the report data from a verified bundle's SHA256SUMS and inventory (pure). */
export function reportData(
  bundle: string,
  head: { report: VerifyReport; sums: Buffer; inventory: Buffer; sizes: Map<string, number> },
  publicKeyPem?: string,
): BundleReportData {
  const inv = parseInventory(head.inventory);
  const sums = parseChecksums(head.sums.toString("utf8"));
  const items = (inv.items as unknown as Record<string, unknown>[]).map(reportItem);
  const byKind = new Map<string, { items: number; bytes: number }>();
  for (const i of items) {
    const k = byKind.get(i.kind) ?? { items: 0, bytes: 0 };
    k.items++;
    k.bytes += i.size;
    byKind.set(i.kind, k);
  }
  const extraFiles = [...sums]
    .filter(([path]) => !OWN_FILES.has(path) && !path.startsWith("blobs/"))
    .map(([path, sha]) => ({
      path,
      sha256: sha,
      ...(head.sizes.has(path) ? { size: head.sizes.get(path)! } : {}),
    }));
  const { ok, signature, signed, files, blobs, bytes, warnings } = head.report;
  const data: BundleReportData = {
    bundle,
    format: inv.format,
    tool: inv.tool,
    created: inv.created,
    metadata: inv.metadata,
    config: { file: inv.config?.file ?? "", sha256: inv.config?.sha256 ?? "" },
    platforms: inv.platforms ?? [],
    verification: { ok, signature, signed, files, blobs, bytes, warnings },
    checksums: { file: CHECKSUMS_FILE, sha256: sha256Hex(head.sums), entries: sums.size },
    signatureFiles: SIGNATURE_FILES.filter((f) => head.sizes.has(f)),
    items,
    extraFiles,
    totals: {
      items: inv.totals?.items ?? items.length,
      blobs: inv.totals?.blobs ?? 0,
      bytes: inv.totals?.bytes ?? 0,
      files: head.sizes.size,
      byKind: [...byKind].map(([kind, v]) => ({ kind, ...v })),
    },
  };
  if (publicKeyPem && signature === "verified")
    data.signingKey = { fingerprint: publicKeyFingerprint(publicKeyPem) };
  if (inv.since) {
    // the report names the base and counts what it left out; where each blob came from is import's business
    const { bundle, name, version, created, omittedBlobs } = inv.since;
    data.since = { bundle, name, version, created, omittedBlobs: omittedBlobs.length };
  }
  return data;
}

/** Verifies the bundle like `bundle verify`, refuses (IntegrityError, exit 3) if it does not, then reads it. */
export async function buildBundleReport(input: string, opts: ReportOptions): Promise<BundleReportData> {
  const reader = await openBundle(input, opts.s3 ? { s3: opts.s3 } : {});
  try {
    const head = reader.seekable
      ? await verifiedHeadSeekable(reader, input, opts)
      : await verifiedHeadSequential(reader, input, opts);
    return reportData(input, head, opts.publicKeyPem);
  } finally {
    await reader.close();
  }
}

// ---------------------------------------------------------------- rendering

/** A value shown as a tree: objects become labelled nodes, arrays of objects become lists. */
export interface TreeNode {
  label: string;
  text?: string;
  children?: TreeNode[];
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

function isScalar(v: unknown): boolean {
  return v === null || ["string", "number", "boolean", "undefined"].includes(typeof v);
}

/** A label for one element of a list of objects: its name (and version), else its digest or URL. */
function elementLabel(o: Record<string, unknown>, i: number): string {
  const name = o.name ?? o.ref ?? o.image ?? o.path ?? o.url ?? o.digest;
  if (typeof name !== "string") return `#${i + 1}`;
  const version = o.version ?? o.tag;
  return typeof version === "string" && version !== "" ? `${name} ${version}` : name;
}

export function toTree(value: unknown): TreeNode[] {
  if (Array.isArray(value)) {
    return value.map((v, i) =>
      isScalar(v)
        ? { label: `#${i + 1}`, text: scalar(v) }
        : Array.isArray(v)
          ? { label: `#${i + 1}`, children: toTree(v) }
          : { label: elementLabel(v as Record<string, unknown>, i), children: toTree(v) },
    );
  }
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).map(([k, v]) => {
      if (isScalar(v)) return { label: k, text: scalar(v) };
      if (Array.isArray(v) && v.every(isScalar)) return { label: k, text: v.map(scalar).join(", ") };
      return { label: k, children: toTree(v) };
    });
  }
  return [{ label: "value", text: scalar(value) }];
}

/** Whole bytes and a readable size: `12345678 B (11.8 MiB)`. */
export function formatSize(n: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = "";
  for (const unit of units) {
    if (v < 1024) break;
    v /= 1024;
    u = unit;
  }
  return u ? `${n} B (${v.toFixed(1)} ${u})` : `${n} B`;
}

function signatureCell(i: ReportItem): string {
  if (i.signatureChecks.length === 0) return "not checked (no verify rule)";
  return i.signatureChecks
    .map((c) => `${c.verified ? "verified" : "NOT verified"} by ${c.key}${c.via ? ` (${c.via})` : ""}`)
    .join("; ");
}

function carriedCell(i: ReportItem): string {
  if (i.carried.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const c of i.carried) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1);
  const names: Record<string, string> = {
    sig: "signature",
    att: "attestation",
    sbom: "SBOM",
    referrer: "referrer",
  };
  return [...counts].map(([k, n]) => `${n} ${names[k] ?? k}${n === 1 ? "" : "s"}`).join(", ");
}

function signatureSummary(d: BundleReportData): string {
  switch (d.verification.signature) {
    case "verified":
      return `verified with the public key ${d.signingKey?.fingerprint ?? ""}`;
    case "not-checked":
      return d.verification.signed
        ? "present but NOT checked (no --key given): authenticity is not established"
        : "the bundle is unsigned and no key was given: authenticity is not established";
    case "absent":
      return "absent";
    default:
      return "INVALID";
  }
}

/** The facts at the top of both renderings, as label/value pairs. */
function facts(d: BundleReportData): [string, string][] {
  return [
    ["Bundle", d.bundle],
    ["Name and version", `${d.metadata.name} ${d.metadata.version}`],
    ...(d.metadata.description ? ([["Description", d.metadata.description]] as [string, string][]) : []),
    ["Created", `${d.created} by ${d.tool.name} ${d.tool.version}`],
    ["Format", d.format],
    ["Config", `${d.config.file} (sha256 ${d.config.sha256})`],
    ["Platforms", d.platforms.join(", ") || "-"],
    [
      "Integrity",
      `${d.verification.ok ? "verified" : "FAILED"}: ${d.verification.files} files, ${d.verification.blobs} blobs, ${formatSize(d.verification.bytes)} checked against SHA256SUMS`,
    ],
    ["SHA256SUMS sha256", d.checksums.sha256],
    ["Signature", signatureSummary(d)],
    ["Signature files", d.signatureFiles.join(", ") || "none"],
    ["Signing key fingerprint", d.signingKey?.fingerprint ?? "not given (run with --key cosign.pub)"],
    ...(d.since
      ? ([
          [
            "Incremental on",
            `${d.since.bundle} (${d.since.name} ${d.since.version}, created ${d.since.created}); ${d.since.omittedBlobs} blobs left out`,
          ],
        ] as [string, string][])
      : []),
  ];
}

// Markdown: every value escaped so that no string from a bundle can add markup, links or table cells.
export function mdEscape(s: string): string {
  return s.replace(/\r?\n|\r/g, " ").replace(/[\\`*_{}[\]()<>#+!|~&"]/g, (c) => `\\${c}`);
}

function mdTree(nodes: TreeNode[], depth = 0): string[] {
  const pad = "  ".repeat(depth);
  return nodes.flatMap((n) => [
    `${pad}- **${mdEscape(n.label)}**${n.text !== undefined ? `: ${mdEscape(n.text)}` : ""}`,
    ...(n.children ? mdTree(n.children, depth + 1) : []),
  ]);
}

function mdTable(head: string[], rows: string[][]): string[] {
  return [
    `| ${head.map(mdEscape).join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.map(mdEscape).join(" | ")} |`),
  ];
}

const ITEM_HEAD = [
  "#",
  "Kind",
  "Name",
  "Source",
  "Digest",
  "Size",
  "Platforms",
  "Signature checked at create",
  "Carried",
];

function itemRow(i: ReportItem, n: number): string[] {
  return [
    String(n + 1),
    i.kind,
    i.name,
    i.source,
    i.digest,
    formatSize(i.size),
    i.platforms.join(", ") || "-",
    signatureCell(i),
    carriedCell(i),
  ];
}

function sectionTree(i: ReportItem): TreeNode[] {
  const nodes: TreeNode[] = [
    { label: "media type", text: i.mediaType },
    { label: "blobs", text: String(i.blobs) },
  ];
  if (i.signatureChecks.length > 0)
    nodes.push({ label: "signature checks at create", children: toTree(i.signatureChecks) });
  if (i.carried.length > 0) {
    nodes.push({
      label: "carried signatures, attestations, SBOMs, referrers",
      children: i.carried.map((c) => ({
        label: c.kind,
        text: `${c.digest} ${c.artifactType ?? c.mediaType}${c.tag ? ` tag ${c.tag}` : ""} for ${c.subject}`,
      })),
    });
  }
  nodes.push(...toTree(i.details));
  return nodes;
}

export function renderMarkdown(d: BundleReportData): string {
  const lines: string[] = [
    `# Bundle report: ${mdEscape(d.metadata.name)} ${mdEscape(d.metadata.version)}`,
    "",
    ...mdTable(["Field", "Value"], facts(d)),
    "",
    ...d.verification.warnings.map((w) => `> **Warning:** ${mdEscape(w)}`),
    ...(d.verification.warnings.length ? [""] : []),
    `## Items (${d.items.length})`,
    "",
    ...mdTable(ITEM_HEAD, d.items.map(itemRow)),
    "",
    "## Totals",
    "",
    ...mdTable(
      ["Kind", "Items", "Size"],
      [
        ...d.totals.byKind.map((k) => [k.kind, String(k.items), formatSize(k.bytes)]),
        [
          "all (unique blobs)",
          String(d.totals.items),
          `${formatSize(d.totals.bytes)} in ${d.totals.blobs} blobs`,
        ],
      ],
    ),
    "",
    `${d.totals.files} files in the bundle, ${d.checksums.entries} listed in SHA256SUMS.`,
    "",
  ];
  if (d.extraFiles.length > 0) {
    lines.push(
      "## Other files",
      "",
      ...mdTable(
        ["Path", "sha256", "Size"],
        d.extraFiles.map((f) => [f.path, f.sha256, f.size === undefined ? "" : formatSize(f.size)]),
      ),
      "",
    );
  }
  lines.push("## Item details", "");
  d.items.forEach((i, n) => {
    lines.push(`### ${n + 1}. ${mdEscape(i.kind)}: ${mdEscape(i.name)}`, "", ...mdTree(sectionTree(i)), "");
  });
  lines.push(
    "## Sign-off",
    "",
    ...mdTable(
      ["Role", "Name", "Date", "Signature"],
      [
        ["Reviewer", "", "", ""],
        ["Approver", "", "", ""],
      ],
    ),
    "",
  );
  return `${lines.join("\n")}\n`;
}

// HTML: one file, no external assets, every string escaped.
export function htmlEscape(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function htmlTree(nodes: TreeNode[]): string {
  return `<ul>${nodes
    .map(
      (n) =>
        `<li><b>${htmlEscape(n.label)}</b>${n.text !== undefined ? `: <span class="v">${htmlEscape(n.text)}</span>` : ""}${n.children ? htmlTree(n.children) : ""}</li>`,
    )
    .join("")}</ul>`;
}

function htmlTable(head: string[], rows: string[][], cls = ""): string {
  return `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${head.map((h) => `<th>${htmlEscape(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${htmlEscape(c)}</td>`).join("")}</tr>`)
    .join("\n")}</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;margin:2em auto;max-width:80em;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #999;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#eee}td{word-break:break-all}table.facts td:first-child{width:14em;font-weight:600;word-break:normal}
.v,td{font-variant-numeric:tabular-nums}.warn{border-left:4px solid #c60;padding:.3em .6em;background:#fff4e5}
.ok{color:#060;font-weight:600}.bad{color:#a00;font-weight:600}ul{margin:.2em 0;padding-left:1.4em}
.v{word-break:break-all}.sign td{height:2.4em}
@media print{body{margin:0;max-width:none;font-size:10.5px}h2{break-after:avoid}section.item,tr{break-inside:avoid}th{background:#eee!important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
`;

export function renderHtml(d: BundleReportData): string {
  const title = `Bundle report: ${d.metadata.name} ${d.metadata.version}`;
  const parts: string[] = [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>${htmlEscape(title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${htmlEscape(title)}</h1>`,
    `<p class="${d.verification.ok && d.verification.signature === "verified" ? "ok" : "bad"}">${htmlEscape(
      d.verification.ok ? `Integrity verified; signature ${signatureSummary(d)}` : "Integrity FAILED",
    )}</p>`,
    htmlTable(["Field", "Value"], facts(d), "facts"),
    ...d.verification.warnings.map((w) => `<p class="warn"><b>Warning:</b> ${htmlEscape(w)}</p>`),
    `<h2>Items (${d.items.length})</h2>`,
    htmlTable(ITEM_HEAD, d.items.map(itemRow)),
    "<h2>Totals</h2>",
    htmlTable(
      ["Kind", "Items", "Size"],
      [
        ...d.totals.byKind.map((k) => [k.kind, String(k.items), formatSize(k.bytes)]),
        [
          "all (unique blobs)",
          String(d.totals.items),
          `${formatSize(d.totals.bytes)} in ${d.totals.blobs} blobs`,
        ],
      ],
    ),
    `<p>${d.totals.files} files in the bundle, ${d.checksums.entries} listed in SHA256SUMS.</p>`,
  ];
  if (d.extraFiles.length > 0) {
    parts.push(
      "<h2>Other files</h2>",
      htmlTable(
        ["Path", "sha256", "Size"],
        d.extraFiles.map((f) => [f.path, f.sha256, f.size === undefined ? "" : formatSize(f.size)]),
      ),
    );
  }
  parts.push("<h2>Item details</h2>");
  d.items.forEach((i, n) => {
    parts.push(
      `<section class="item"><h3>${n + 1}. ${htmlEscape(i.kind)}: ${htmlEscape(i.name)}</h3>${htmlTree(sectionTree(i))}</section>`,
    );
  });
  parts.push(
    "<h2>Sign-off</h2>",
    htmlTable(
      ["Role", "Name", "Date", "Signature"],
      [
        ["Reviewer", "", "", ""],
        ["Approver", "", "", ""],
      ],
      "sign",
    ),
    "</body></html>",
  );
  return `${parts.join("\n")}\n`;
}
