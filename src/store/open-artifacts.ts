/**
 * Opening an artifact repository by URL. Kept apart from artifacts.ts (the interface its
 * implementations import), so the interface does not depend on them; each implementation is loaded
 * only when a URL needs it (the S3 SDK is large).
 */
import { UsageError } from "../errors.js";
import type { ArtifactRepository, ArtifactRepositoryOptions } from "./artifacts.js";

/** Open `s3://BUCKET/PREFIX` or `http(s)://HOST/PATH/`. */
export async function openArtifactRepository(
  url: string,
  opts: ArtifactRepositoryOptions = {},
): Promise<ArtifactRepository> {
  if (url.startsWith("s3://")) {
    const { S3ArtifactRepository } = await import("./s3.js");
    return S3ArtifactRepository.fromUrl(url, opts);
  }
  if (/^https?:\/\//i.test(url)) {
    const { HttpArtifactRepository } = await import("./http-artifacts.js");
    return HttpArtifactRepository.fromUrl(url, opts);
  }
  throw new UsageError(`--artifacts ${url}: expected s3://BUCKET/PREFIX or an http(s):// URL`);
}
