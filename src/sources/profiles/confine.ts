/**
 * Which local folders a profile's dependencies may read. A profile fetched from a server (git,
 * url, Supermarket, OCI) is untrusted content: its inspec.yml must not make airgap read the build
 * host's files (`path: /home/me/.ssh`, `git: file:///srv/secrets.git`) into a bundle. So:
 * - a *remote* profile's `path:` dependencies must stay inside that profile's own fetched content
 *   (a monorepo's `path: ../common` next to it in the same checkout), and its git dependencies must
 *   name a network remote, never a local repository;
 * - a *local* profile (a `path:` entry of the config, and the `path:` dependencies it reaches) may
 *   name local folders and repositories, but only inside the config file's folder, the entry's own
 *   folder, and the folders the entry lists under `allow_dependencies_from`.
 * Containment is checked on real paths, so a symbolic link inside a checkout cannot point out.
 */
import { realpath } from "node:fs/promises";
import { isAbsolute, resolve, sep } from "node:path";
import { ConfigError, IntegrityError } from "../../errors.js";
import type { ProfileSource } from "../../profiles/metadata.js";
import { redactUrl } from "./git.js";

export interface Confinement {
  /** A profile from the config's own `path:` entries (or reached from one through `path:`). */
  local: boolean;
  /** Real paths of the folders this profile's local dependencies may come from. */
  roots: string[];
}

/** How a git remote is reached: over the network, from this machine, or through a helper program. */
export type GitRemoteKind = "network" | "local" | "helper";

const NETWORK_SCHEMES = new Set(["http", "https", "ssh", "git", "git+ssh", "ssh+git", "ftp", "ftps"]);

export function gitRemoteKind(remote: string): GitRemoteKind {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(remote)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (scheme === "file") return "local";
    return NETWORK_SCHEMES.has(scheme) ? "network" : "helper";
  }
  // `ext::cmd`, `fd::3`, `hg::...`: git runs a helper program
  if (remote.includes("::")) return "helper";
  // scp-like `[user@]host:path` (a colon before any slash, not a Windows drive)
  if (/^[^/]+:/.test(remote) && !/^[a-zA-Z]:[\\/]/.test(remote)) return "network";
  return "local";
}

/** The real path of `p`, or of its nearest existing parent joined with the rest. */
async function realOrLexical(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    const parent = resolve(p, "..");
    if (parent === p) return p;
    return resolve(await realOrLexical(parent), p.slice(parent.length).replace(/^[\\/]+/, ""));
  }
}

export async function realRoots(folders: readonly string[]): Promise<string[]> {
  return await Promise.all(folders.map((f) => realOrLexical(resolve(f))));
}

function inside(path: string, roots: readonly string[]): boolean {
  return roots.some((r) => path === r || path.startsWith(r.endsWith(sep) ? r : r + sep));
}

export interface DependencyContext {
  /** The depending profile, as messages name it. */
  profile: string;
  /** The dependency, as messages name it. */
  dependency: string;
  /** The folder relative paths resolve against (the depending profile's root). */
  cwd: string;
}

/**
 * Refuse a dependency that would read local files its depending profile may not reach. Remote
 * profiles get an IntegrityError (PATH_ESCAPE, exit 3): their content tried to leave itself. Local
 * profiles get a ConfigError (exit 2) that says how to allow the folder.
 */
export async function checkDependencySource(
  source: ProfileSource,
  trust: Confinement,
  at: DependencyContext,
): Promise<void> {
  const who = `profile ${at.profile}: dependency ${at.dependency}`;
  if (source.kind === "git") {
    const kind = gitRemoteKind(source.git);
    if (kind === "network") return;
    if (kind === "helper" || !trust.local) {
      throw new IntegrityError(
        "PATH_ESCAPE",
        `${who} names the git remote ${redactUrl(source.git)}, which is ${kind === "helper" ? "a git helper transport" : "a repository on this machine"}; ${kind === "helper" ? "dependencies may only name http(s), ssh or git:// remotes" : "only profiles from the config's own path: entries may depend on local repositories"}`,
        at.dependency,
      );
    }
    const raw = source.git.replace(/^file:\/\//i, "");
    await checkLocal(resolve(at.cwd, raw), `the local git repository ${source.git}`, trust, at, who);
    return;
  }
  if (source.kind !== "path") return;
  const raw = source.path.startsWith("file://") ? source.path.slice("file://".length) : source.path;
  if (!trust.local && (isAbsolute(raw) || source.path.startsWith("file://"))) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `${who} names the local path ${source.path}; a profile fetched from a remote source may only depend on paths inside its own content, and only profiles from the config's own path: entries may depend on local folders`,
      at.dependency,
    );
  }
  await checkLocal(resolve(at.cwd, raw), `the path ${source.path}`, trust, at, who);
}

async function checkLocal(
  target: string,
  what: string,
  trust: Confinement,
  at: DependencyContext,
  who: string,
): Promise<void> {
  const real = await realOrLexical(target);
  if (inside(real, trust.roots)) return;
  if (!trust.local) {
    throw new IntegrityError(
      "PATH_ESCAPE",
      `${who} names ${what}, which leaves the profile's own fetched content; a profile fetched from a remote source may only depend on paths inside its own content, and only profiles from the config's own path: entries may depend on local folders`,
      at.dependency,
    );
  }
  throw new ConfigError(
    `${who} names ${what} (${real}), outside the config file's folder and the profile's own folder; local profiles may only depend on folders there, or in a folder the config entry lists under allow_dependencies_from`,
  );
}
