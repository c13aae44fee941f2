/**
 * The written form of `bundle.config.yaml` and of the import config, as zod schemas. These describe
 * exactly what a user may write (no defaults, no transforms), so the same schemas export to JSON Schema
 * for editors. Normalization (defaults, absolute paths, cross-field rules) lives in load.ts.
 */
import { z } from "zod";
import { parseReference } from "../oci/reference.js";
import { normalizeRepositoryPrefix, REPOSITORY_PATH } from "../targets/mapping.js";

export const API_VERSION = "cinc-airgap/v1";

export const CARRY_KINDS = ["signatures", "attestations", "sboms", "referrers"] as const;

/**
 * Keys that look like registry credentials. They get their own message because the fix is not a
 * spelling correction but a different file.
 */
export const CREDENTIAL_KEYS = [
  "username",
  "user",
  "password",
  "pass",
  "auth",
  "token",
  "identitytoken",
  "registrytoken",
  "credentials",
];

const HEX64 = /^[a-f0-9]{64}$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9.]+)?$/;
// host[:port] or [ipv6][:port]; no scheme, no path.
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HTTP_URL = /^https?:\/\/\S+$/;

const nonEmpty = (what: string) => z.string().min(1, { error: `${what} must not be empty` });

const sha256Hex = z
  .string()
  .regex(HEX64, { error: "expected a sha256 checksum: 64 lowercase hexadecimal characters" })
  .describe("sha256 checksum as 64 lowercase hexadecimal characters");

export const platformString = z
  .string()
  .regex(PLATFORM, { error: 'expected a platform "os/arch" or "os/arch/variant", e.g. "linux/amd64"' })
  .describe('Platform as "os/arch" or "os/arch/variant", e.g. linux/amd64, linux/arm/v7');

const platformList = z.array(platformString);

const httpUrl = (what: string) =>
  z.string().regex(HTTP_URL, { error: `${what} must be an http:// or https:// URL` });

/** An image reference; validated with the same parser the registry client uses. */
export const imageRef = z
  .string()
  .superRefine((value, ctx) => {
    try {
      parseReference(value);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message, input: value });
    }
  })
  .describe("Image reference, e.g. docker.io/cincproject/auditor:6.8.24 or ghcr.io/org/x@sha256:<hex>");

/**
 * A URL path before `/v2/`: segments of plain characters, no empty, `.` or `..` segment, no query,
 * fragment or percent escape (an escaped `..` would be decoded by the server); one trailing slash is
 * tolerated and dropped.
 */
const PATH_PREFIX = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+)+\/?$/;

/** Connection settings for one registry; credentials deliberately have no place here. */
export const registrySchema = z
  .strictObject({
    host: z
      .string()
      .regex(HOST, { error: "expected host[:port] without a scheme or path, e.g. registry.example:5000" })
      .describe("Registry host with optional port"),
    ca: nonEmpty("ca").describe("Extra trusted CA certificate (PEM), relative to the config file").optional(),
    cert: nonEmpty("cert").describe("Client certificate (PEM) for mutual TLS").optional(),
    key: nonEmpty("key").describe("Client private key (PEM) for mutual TLS").optional(),
    insecure: z.boolean().describe("Skip TLS certificate verification for this host only").optional(),
    plainHTTP: z.boolean().describe("Use http:// instead of https:// for this host only").optional(),
    pathPrefix: z
      .string()
      .regex(PATH_PREFIX, {
        error:
          "expected an absolute URL path without query, fragment, percent escapes or '.'/'..' segments, e.g. /artifactory/api/docker/docker-local",
      })
      .describe(
        "URL path the registry API is served under, before /v2/ (Artifactory repository-path access, a reverse proxy at a sub-path), e.g. /artifactory/api/docker/docker-local",
      )
      .optional(),
  })
  .describe(
    "Connection settings per registry host. Credentials come from docker config.json / containers auth.json, never from here.",
  );

const verifySchema = z.strictObject({
  match: nonEmpty("match").describe('Glob over normalized image references, e.g. "docker.io/cincproject/*"'),
  key: nonEmpty("key").describe("cosign public key (PEM) that must have signed matching images"),
});

const imageSchema = z.strictObject({
  ref: imageRef,
  platforms: platformList.describe("Platforms to carry; default: the top-level platforms").optional(),
  carry: z
    .array(z.enum(CARRY_KINDS))
    .describe("Which related artifacts to carry; default: all four, when they exist")
    .optional(),
});

const runnerSchema = z
  .strictObject({
    base: imageRef.describe(
      "Node base image (Node >= 20) of the runner image, e.g. docker.io/library/node:20-bookworm-slim; pin it with @sha256:<hex> where you can",
    ),
    platforms: platformList.describe("Platforms to build; default: the top-level platforms").optional(),
  })
  .describe(
    "The runner image cinc-airgap/airgap:VERSION of the in-cluster import Job, built by create with no container engine: this base plus one layer holding the single-file airgap",
  );

const profileName = nonEmpty("name").describe("Name to give the profile in the bundle").optional();

// In each union the first key of every branch identifies it (the loader relies on this to report the
// problems of the branch the user meant). Order matters where branches share keys: supermarket has `url`.
const gitProfile = z.strictObject({
  git: nonEmpty("git").describe("Git repository URL"),
  branch: nonEmpty("branch").optional(),
  tag: nonEmpty("tag").optional(),
  ref: nonEmpty("ref").describe("Commit SHA or any git ref").optional(),
  relative_path: nonEmpty("relative_path").describe("Folder of the profile inside the repository").optional(),
  name: profileName,
});
const supermarketProfile = z.strictObject({
  supermarket: z
    .string()
    .regex(/^(?:supermarket:\/\/)?[^/\s]+\/[^/\s]+$/, {
      error: 'expected "supermarket://owner/name"',
    })
    .describe("supermarket://owner/name"),
  version: nonEmpty("version").optional(),
  url: httpUrl("url").describe("Supermarket server; default https://supermarket.chef.io").optional(),
  name: profileName,
});
const urlProfile = z.strictObject({
  url: httpUrl("url").describe("Profile archive (.tar.gz or .zip)"),
  sha256: sha256Hex.optional(),
  name: profileName,
});
const pathProfile = z.strictObject({
  path: nonEmpty("path").describe("Profile folder or archive, relative to the config file"),
  allow_dependencies_from: z
    .array(nonEmpty("allow_dependencies_from entry"))
    .describe(
      "Folders outside the config file's folder that this profile's path: and local git: dependencies may come from, relative to the config file",
    )
    .optional(),
  name: profileName,
});
const ociProfile = z.strictObject({
  oci: imageRefWithScheme().describe("Profile stored as an OCI artifact, e.g. oci://ghcr.io/org/profile:1.0"),
  name: profileName,
});

function imageRefWithScheme() {
  return z.string().superRefine((value, ctx) => {
    try {
      parseReference(value.replace(/^oci:\/\//, ""));
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message, input: value });
    }
  });
}

const profileSchema = z.union([gitProfile, supermarketProfile, urlProfile, pathProfile, ociProfile]);

const repoChart = z.strictObject({
  repo: httpUrl("repo").describe("Helm chart repository URL (index.yaml)"),
  name: nonEmpty("name"),
  version: nonEmpty("version").describe("Exact version or semver range"),
});
const ociChart = z.strictObject({
  oci: z
    .string()
    .regex(/^oci:\/\/\S+$/, { error: 'expected "oci://registry/repository"' })
    .superRefine((value, ctx) => {
      if (!value.startsWith("oci://")) return;
      try {
        parseReference(value.slice("oci://".length));
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message, input: value });
      }
    })
    .describe("oci://registry/repository of the chart"),
  version: nonEmpty("version"),
});
const gitChart = z.strictObject({
  git: nonEmpty("git").describe("Git repository URL"),
  ref: nonEmpty("ref").describe("Branch, tag or commit"),
  path: nonEmpty("path").describe("Chart folder inside the repository"),
  images: z
    .union([z.literal("auto"), z.literal(false)], { error: 'expected "auto" or false' })
    .describe('"auto" adds the images the chart\'s values name')
    .optional(),
});
const pathChart = z.strictObject({
  path: nonEmpty("path").describe("Chart folder (holding Chart.yaml), relative to the config file"),
  images: z
    .union([z.literal("auto"), z.literal(false)], { error: 'expected "auto" or false' })
    .describe('"auto" adds the images the chart\'s values name')
    .optional(),
});
const chartSchema = z.union([repoChart, ociChart, gitChart, pathChart]);

const gemSchema = z.strictObject({
  name: nonEmpty("name"),
  version: nonEmpty("version").describe('RubyGems requirement, e.g. "~> 1.3"').optional(),
  platform: z
    .string()
    .regex(/^[A-Za-z0-9_]+(?:-[A-Za-z0-9_.]+)*$/, { error: "expected a gem platform, e.g. x86_64-linux" })
    .describe("Gem platform to prefer (e.g. x86_64-linux); default: pure-Ruby gems")
    .optional(),
  source: httpUrl("source").describe("Gem server; default https://rubygems.org").optional(),
  provided: z
    .array(nonEmpty("provided gem"))
    .describe("Gems already shipped by CINC Auditor, not carried")
    .optional(),
});

const fileSchema = z.strictObject({
  name: z
    .string()
    .regex(NAME, { error: "expected a file name of letters, digits, '.', '_' or '-'" })
    .describe("Name of the file in the bundle"),
  url: httpUrl("url").describe("Download URL; {os}, {arch} and {variant} expand per platform"),
  platforms: platformList.describe("Platforms to download for; default: the top-level platforms").optional(),
  sha256: z
    .union([sha256Hex, z.record(platformString, sha256Hex)], {
      error: "expected a sha256 checksum (64 hex characters) or a map of platform to checksum",
    })
    .optional(),
});

const metadataSchema = z.strictObject({
  name: z
    .string()
    .regex(NAME, { error: "expected a name of letters, digits, '.', '_' or '-'" })
    .describe("Bundle name"),
  version: nonEmpty("version").describe("Bundle version, e.g. 2026.11.0"),
  description: z.string().optional(),
});

export const bundleConfigSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("Bundle"),
    metadata: metadataSchema,
    platforms: platformList
      .describe("Default platforms for images and per-platform files; empty = all")
      .optional(),
    registries: z.array(registrySchema).optional(),
    verify: z
      .array(verifySchema)
      .describe("Upstream cosign signature policy, checked when the bundle is created")
      .optional(),
    images: z.array(imageSchema).optional(),
    runner: runnerSchema.optional(),
    profiles: z.array(profileSchema).optional(),
    charts: z.array(chartSchema).optional(),
    gems: z.array(gemSchema).optional(),
    files: z.array(fileSchema).optional(),
  })
  .describe("cinc-airgap bundle.config.yaml");

export const mappingSchema = z.strictObject({
  from: z
    .string()
    .superRefine((value, ctx) => {
      try {
        normalizeRepositoryPrefix(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message, input: value });
      }
    })
    .describe("Source repository or repository prefix, e.g. docker.io/cincproject/auditor or ghcr.io/org"),
  to: z
    .string()
    .regex(REPOSITORY_PATH, {
      error: "expected a repository path under the target registry, e.g. scanner/auditor",
    })
    .describe("Repository path under the target registry"),
});

export const importConfigSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal("Import"),
    registries: z.array(registrySchema).optional(),
    mappings: z.array(mappingSchema).optional(),
  })
  .describe("cinc-airgap import config");

export type RawBundleConfig = z.infer<typeof bundleConfigSchema>;
export type RawImportConfig = z.infer<typeof importConfigSchema>;
export type RawRegistry = z.infer<typeof registrySchema>;
