import { existsSync, readdirSync, statSync } from "node:fs";
import { isS3Url } from "../../bundle/archive/s3-url.js";
import type { WriteTarget } from "../../bundle/archive/writer.js";
import { UsageError } from "../../errors.js";

/**
 * Map `-o` and `--compress`/`--split` to a writer target: DIR, FILE.tar, FILE.tar.zst, - (stdout),
 * or s3://BUCKET/KEY, always a tar (zstd-compressed when KEY ends in .tar.zst or with --compress zstd).
 */
export function outputTarget(
  path: string,
  compress: "zstd" | "none" | undefined,
  splitSize: number | undefined,
): WriteTarget {
  const zstdName = /\.(tar\.zst|tzst)$/.test(path);
  const tarName = zstdName || path.endsWith(".tar") || path === "-" || isS3Url(path);
  if (!tarName) {
    if (compress === "zstd")
      throw new UsageError("--compress zstd needs a tar output (-o FILE.tar.zst or -o -)");
    if (splitSize !== undefined)
      throw new UsageError("--split needs a tar output (-o FILE.tar or FILE.tar.zst)");
    return { path, format: "dir", compress: "none" };
  }
  if (zstdName && compress === "none")
    throw new UsageError(`${path} names a zstd file but --compress none was given`);
  if (splitSize !== undefined && path === "-") throw new UsageError("--split cannot write to stdout");
  const target: WriteTarget = {
    path,
    format: "tar",
    compress: zstdName || compress === "zstd" ? "zstd" : "none",
  };
  if (splitSize !== undefined) target.splitSize = splitSize;
  return target;
}

/** Refuse, before any work, to replace an existing output unless --force was given. */
export function assertOutputFree(target: WriteTarget, force: boolean): void {
  // an s3:// output is checked by the writer's preflight (create runs it before pulling)
  if (force || target.path === "-" || isS3Url(target.path)) return;
  const taken =
    target.format === "dir"
      ? existsSync(target.path) &&
        (!statSync(target.path).isDirectory() || readdirSync(target.path).length > 0)
      : target.splitSize !== undefined
        ? existsSync(`${target.path}.parts.json`) || existsSync(`${target.path}.part-0001`)
        : existsSync(target.path);
  if (taken)
    throw new UsageError(`${target.path} already exists; remove it, choose another -o, or pass --force`);
}
