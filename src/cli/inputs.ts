import { constants } from "node:fs";
import { access, mkdtemp, rmdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { UsageError } from "../errors.js";

/** A file named on the command line or in a config, and what it is for (said in the error). */
export interface NamedInput {
  file: string;
  what: string;
  /** A folder is fine too (profile `path:` sources). */
  folderOk?: boolean;
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOTDIR") return "a parent of it is not a folder";
  return (err as Error).message;
}

/**
 * Check, before any work (and in --dry-run too), that every named input exists and can be read:
 * a run that pulls for an hour and then cannot find its signing key has wasted the hour. All
 * missing files are named at once, each with what it is for.
 */
export async function assertInputsReadable(inputs: NamedInput[]): Promise<void> {
  const problems: string[] = [];
  for (const input of inputs) {
    try {
      const s = await stat(input.file);
      if (s.isDirectory() && !input.folderOk) {
        problems.push(`${input.what} ${input.file} is a folder, not a file`);
        continue;
      }
      await access(input.file, constants.R_OK);
    } catch (err) {
      problems.push(`cannot read ${input.what} ${input.file}: ${reason(err)}`);
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
}

/**
 * Check that an output can be written where it is to go, before anything is pulled: the nearest
 * existing folder of `path` must be a folder we can create entries in (tried, not guessed from
 * mode bits: root passes access() on read-only mounts and /proc).
 */
export async function assertOutputWritable(path: string, what: string, isFolder: boolean): Promise<void> {
  let dir = resolve(isFolder ? path : dirname(resolve(path)));
  for (;;) {
    try {
      const s = await stat(dir);
      if (!s.isDirectory()) throw new UsageError(`${what} ${path} cannot be written: ${dir} is not a folder`);
      break;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  try {
    const probe = await mkdtemp(join(dir, ".airgap-write-check-"));
    await rmdir(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "EROFS"
        ? " (read-only file system)"
        : code === "EACCES" || code === "EPERM"
          ? " (permission denied)"
          : "";
    throw new UsageError(`${what} ${path} cannot be written: the folder ${dir} is not writable${why}`);
  }
}

/** The flags of the S3 endpoint that `s3://` bundles are read from or written to. */
export interface S3Flags {
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  caFile?: string[];
}

/** The artifact repository's S3 settings (its options' shape) from a command's flags, for `s3://` bundles. */
export function s3OptionsFrom(flags: S3Flags): {
  endpoint?: string;
  forcePathStyle?: boolean;
  caFile?: string;
} {
  return {
    ...(flags.s3Endpoint ? { endpoint: flags.s3Endpoint } : {}),
    ...(flags.s3PathStyle === false ? { forcePathStyle: false } : {}),
    ...(flags.caFile?.[0] ? { caFile: flags.caFile[0] } : {}),
  };
}
