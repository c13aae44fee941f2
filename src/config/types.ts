/**
 * The normalized config the rest of airgap works with: defaults applied, paths absolute (resolved against
 * the config file's folder), references parsed. The written form is in schema.ts.
 */
import type { Reference } from "../oci/reference.js";
import type { Mapping } from "../targets/mapping.js";
import type { CARRY_KINDS } from "./schema.js";

export type CarryKind = (typeof CARRY_KINDS)[number];

/** TLS and transport settings for one registry host. Paths are absolute. */
export interface RegistryConfig {
  host: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure: boolean;
  plainHTTP: boolean;
  /** URL path the registry API lives under, before `/v2/`, without trailing slash (e.g. Artifactory's /artifactory/api/docker/REPO). */
  pathPrefix?: string;
}

export interface VerifyRule {
  /** Glob over normalized references (`*` within a path component, `**` across). */
  match: string;
  /** Absolute path of the cosign public key. */
  key: string;
}

export interface ImageSpec {
  /** As written in the config. */
  ref: string;
  /** Parsed and normalized (docker.io/library/…, :latest added when neither tag nor digest). */
  reference: Reference;
  /** Platforms to carry; [] means all the image has. Inherits the top-level `platforms`. */
  platforms: string[];
  carry: CarryKind[];
}

/** The runner image create builds: a Node base plus one layer holding the single-file airgap. */
export interface RunnerSpec {
  /** The base as written. */
  base: string;
  /** Parsed and normalized. */
  reference: Reference;
  /** Platforms to build; [] means all the base has. Inherits the top-level `platforms`. */
  platforms: string[];
}

export type ProfileSource =
  | {
      type: "git";
      git: string;
      /** Which of branch / tag / ref the user gave, and its value. */
      refKind: "branch" | "tag" | "ref";
      ref: string;
      relativePath?: string;
      name?: string;
    }
  | { type: "url"; url: string; sha256?: string; name?: string }
  | {
      type: "path";
      path: string;
      name?: string;
      /** Absolute folders outside the config's folder that local dependencies may come from. */
      allowDependenciesFrom?: string[];
    }
  | {
      type: "supermarket";
      /** `owner/name`, without the `supermarket://` scheme. */
      supermarket: string;
      version?: string;
      /** Supermarket server; default https://supermarket.chef.io. */
      url: string;
      name?: string;
    }
  | { type: "oci"; reference: Reference; name?: string };

export type ChartSource =
  | { type: "repo"; repo: string; name: string; version: string }
  | {
      type: "oci";
      /** The chart repository (tag not included; `version` is the tag or range). */
      reference: Reference;
      oci: string;
      version: string;
    }
  | { type: "git"; git: string; ref: string; path: string; images: "auto" | false }
  /** A chart folder on disk; `path` is absolute (written relative to the config file's folder). */
  | { type: "path"; path: string; images: "auto" | false };

export interface GemSpec {
  name: string;
  version?: string;
  /** Gem platform to prefer (x86_64-linux, java, ...); pure-Ruby ("ruby") gems when absent. */
  platform?: string;
  /** Gem server; default https://rubygems.org. */
  source: string;
  provided: string[];
}

export interface FileSpec {
  name: string;
  /** May contain {os}, {arch}, {variant}, expanded per platform. */
  url: string;
  /** Platforms to download for; [] means the file is platform-independent (one download). */
  platforms: string[];
  /** One checksum, or one per platform. */
  sha256?: string | Record<string, string>;
}

export interface BundleConfig {
  /** Absolute path of the config file, and its folder (relative paths were resolved against it). */
  file: string;
  dir: string;
  apiVersion: "cinc-airgap/v1";
  kind: "Bundle";
  metadata: { name: string; version: string; description?: string };
  /** Default platforms; [] means all. */
  platforms: string[];
  registries: RegistryConfig[];
  verify: VerifyRule[];
  images: ImageSpec[];
  runner?: RunnerSpec;
  profiles: ProfileSource[];
  charts: ChartSource[];
  gems: GemSpec[];
  files: FileSpec[];
}

export interface ImportConfig {
  file: string;
  registries: RegistryConfig[];
  /** `from` normalized (docker.io/… added when no registry was written). */
  mappings: Mapping[];
}
