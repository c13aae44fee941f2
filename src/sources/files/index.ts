/**
 * Plain files (`files:` in the config): one download per platform, URL placeholders `{os}`, `{arch}`
 * and `{variant}` expanded, each pinned by the sha256 the config gives (verified while it streams) or,
 * with `--allow-unpinned`, by the sha256 seen. In a bundle each download is an ORAS-style artifact:
 * empty config, `artifactType: application/vnd.cinc-airgap.file.v1`, one layer titled NAME.
 */
import { createReadStream } from "node:fs";
import type { FileSpec, RegistryConfig } from "../../config/types.js";
import { IntegrityError, RemoteError, UsageError } from "../../errors.js";
import { isSha256Hex, type Sha256Hex } from "../../oci/digest.js";
import { ArtifactType } from "../../oci/mediatypes.js";
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableError,
  isRetryableStatus,
  sleep,
} from "../../oci/registry/retry.js";
import { redactSecrets } from "../../redact.js";
import type { ArtifactSpec } from "../../store/oci-artifact.js";
import { type Downloaded, download, type HttpOptions, redact } from "../profiles/http.js";

/** The platform of a file that is the same for every platform (its URL has no placeholders). */
export const ANY_PLATFORM = "any";

export const ANNOTATION_FILE_NAME = "io.cinc-airgap.file.name";
export const ANNOTATION_FILE_PLATFORM = "io.cinc-airgap.file.platform";
export const ANNOTATION_OCI_SOURCE = "org.opencontainers.image.source";

const PLACEHOLDER = /\{(os|arch|variant)\}/;

/** One download: a file for one platform. */
export interface PlannedFile {
  name: string;
  /** `os/arch[/variant]`, or `any` for a platform-independent file. */
  platform: string;
  /** The URL with placeholders expanded (may carry user:password, never written anywhere). */
  url: string;
  /** The sha256 the config pins (64 lowercase hex); absent only with allowUnpinned. */
  sha256?: Sha256Hex;
}

/** `linux/arm/v7` → `linux-arm-v7`: the platform as a tag and path-friendly name. */
export function platformSlug(platform: string): string {
  return platform.replaceAll("/", "-");
}

/** The URL for one platform; undefined when the URL needs a part the platform lacks (`{variant}`). */
export function expandUrl(template: string, platform: string): string | undefined {
  if (platform === ANY_PLATFORM) return PLACEHOLDER.test(template) ? undefined : template;
  const [os, arch, variant] = platform.split("/");
  const parts: Record<string, string | undefined> = { os, arch, variant };
  let missing = false;
  const url = template.replace(/\{(os|arch|variant)\}/g, (_m, key: string) => {
    const value = parts[key];
    if (!value) missing = true;
    return value ?? "";
  });
  return missing ? undefined : url;
}

function assertSha256(value: string, where: string): Sha256Hex {
  if (!isSha256Hex(value)) {
    throw new UsageError(`${where}: sha256 "${value}" is not 64 lowercase hexadecimal characters`);
  }
  return value;
}

/**
 * Every download the config asks for, in config order. `platforms` (the `--platform` flag) replaces
 * the platforms of per-platform files. Refuses, before anything is fetched, a platform a file has no
 * URL or no checksum for (a missing checksum is allowed only with `allowUnpinned`).
 */
export function planFiles(
  specs: readonly FileSpec[],
  opts: { platforms?: string[]; allowUnpinned?: boolean } = {},
): PlannedFile[] {
  const out: PlannedFile[] = [];
  for (const spec of specs) {
    const perPlatform = spec.platforms.length > 0;
    const platforms = perPlatform
      ? opts.platforms && opts.platforms.length > 0
        ? opts.platforms
        : spec.platforms
      : [ANY_PLATFORM];
    if (typeof spec.sha256 === "string" && PLACEHOLDER.test(spec.url) && platforms.length > 1) {
      throw new UsageError(
        `file ${spec.name}: one sha256 cannot match the downloads of ${platforms.length} platforms (${platforms.join(", ")}); give one per platform`,
      );
    }
    for (const platform of platforms) {
      const url = expandUrl(spec.url, platform);
      if (url === undefined) {
        throw new UsageError(
          `file ${spec.name} has no URL for platform ${platform}: ${redact(spec.url)} needs ${platform === ANY_PLATFORM ? "a platform" : "a variant (e.g. linux/arm/v7)"}`,
        );
      }
      const pinned =
        typeof spec.sha256 === "string"
          ? spec.sha256
          : platform === ANY_PLATFORM
            ? undefined
            : spec.sha256?.[platform];
      if (pinned === undefined && !opts.allowUnpinned) {
        throw new UsageError(
          `file ${spec.name} has no sha256 for platform ${platform}: add it to the config (sha256: {${platform}: <hex>}) or pass --allow-unpinned to record the one downloaded`,
        );
      }
      const file: PlannedFile = { name: spec.name, platform, url };
      if (pinned !== undefined) file.sha256 = assertSha256(pinned, `file ${spec.name} (${platform})`);
      out.push(file);
    }
  }
  return out;
}

/** TLS settings for the URL's host from the config's `registries:` (same rules as every source). */
export function httpOptionsFor(
  url: string,
  registries: readonly RegistryConfig[],
  caFile: string | undefined,
): HttpOptions {
  let host: string;
  try {
    host = new URL(url).host;
  } catch {
    throw new UsageError(`file URL ${redact(url)} is not a URL`);
  }
  const entry = registries.find((r) => r.host === host);
  const opts: HttpOptions = {};
  const ca = entry?.ca ?? caFile;
  if (ca) opts.caFile = ca;
  if (entry?.insecure) opts.insecure = true;
  return opts;
}

/**
 * Download one planned file to `dest`, verified against its pinned sha256 while it streams (a
 * mismatch is an IntegrityError naming the file and platform; nothing lands at `dest`). Network
 * faults and retryable statuses (429, 5xx) are retried with backoff, as registry requests are.
 */
export async function downloadFile(
  file: PlannedFile,
  dest: string,
  opts: HttpOptions & { signal?: AbortSignal },
): Promise<Downloaded> {
  const policy = DEFAULT_RETRY;
  for (let attempt = 0; ; attempt++) {
    try {
      const dlOpts: Parameters<typeof download>[2] = {
        ...opts,
        what: `file ${file.name} (${file.platform}) URL`,
      };
      if (file.sha256) dlOpts.expectSha256 = file.sha256;
      return await download(file.url, dest, dlOpts);
    } catch (err) {
      if (err instanceof IntegrityError) {
        throw new IntegrityError(err.code, err.message, `files/${file.name} (${file.platform})`, {
          cause: err,
        });
      }
      const retryable =
        err instanceof RemoteError &&
        (err.status !== undefined ? isRetryableStatus(err.status) : isRetryableError(err));
      if (!retryable || attempt >= policy.retries || opts.signal?.aborted) throw err;
      await sleep(backoffDelay(attempt, policy), opts.signal);
    }
  }
}

/** A downloaded file as an ORAS-style artifact: empty config, one layer titled with the file's name. */
export function fileArtifactSpec(
  file: { name: string; platform: string; url: string; sha256: string; size: number },
  path: string,
): ArtifactSpec {
  return {
    artifactType: ArtifactType.file,
    layers: [
      {
        mediaType: "application/octet-stream",
        digest: `sha256:${file.sha256}`,
        size: file.size,
        title: file.name,
        open: () => createReadStream(path),
      },
    ],
    annotations: {
      [ANNOTATION_FILE_NAME]: file.name,
      [ANNOTATION_FILE_PLATFORM]: file.platform,
      [ANNOTATION_OCI_SOURCE]: withoutUserinfo(file.url),
    },
  };
}

/**
 * The URL as recorded in bundle.json and annotations: credentials used for the download never are,
 * neither its userinfo nor secret query parameters (`?access_token=…`, see redactSecrets).
 */
export function withoutUserinfo(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return redactSecrets(url);
    u.username = "";
    u.password = "";
    return redactSecrets(u.toString());
  } catch {
    return redactSecrets(url);
  }
}
