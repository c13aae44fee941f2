/**
 * Git profile sources through the `git` command, pinned to a commit the way InSpec v6.8.24's git
 * fetcher does (lib/inspec/fetcher/git.rb): `git ls-remote URL NAME*`, preferring the peeled
 * `NAME^{}` line of an annotated tag. airgap also pins a source without branch/tag/ref (InSpec
 * leaves it unpinned) to the remote HEAD, so every lock entry names a commit.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { AirgapError, ConfigError, RemoteError } from "../../errors.js";
import { trustFor } from "../../net/trust.js";

export interface GitOptions {
  /** Extra trusted CA (PEM file) for HTTPS remotes, added to the machine's roots for the child git. */
  caFile?: string;
  signal?: AbortSignal;
  /** The git executable; default `git`. */
  gitBinary?: string;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  code: number;
}

function redactUrl(s: string): string {
  return s.replace(/(\w+:\/\/)([^/@\s]+)@/g, "$1***@");
}

export async function runGit(args: string[], opts: GitOptions & { cwd?: string } = {}): Promise<GitResult> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    GIT_TERMINAL_PROMPT: "0",
    GIT_ASKPASS: process.env.GIT_ASKPASS ?? "/bin/false",
    GCM_INTERACTIVE: "never",
    LC_ALL: "C",
  };
  // One bundle of the machine's roots plus the extra CA (GIT_SSL_CAINFO replaces git's trust).
  if (opts.caFile) Object.assign(env, await trustFor({ caFiles: [opts.caFile] }).gitEnv());
  const bin = opts.gitBinary ?? "git";
  return await new Promise<GitResult>((done, fail) => {
    const child = spawn(bin, ["-c", "advice.detachedHead=false", ...args], {
      cwd: opts.cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") {
        fail(
          new AirgapError(
            "git profile sources need the git command, which was not found on PATH",
            "GIT_MISSING",
          ),
        );
      } else fail(e);
    });
    child.on("close", (code) =>
      done({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        code: code ?? 1,
      }),
    );
  });
}

async function gitOk(args: string[], what: string, opts: GitOptions & { cwd?: string }): Promise<string> {
  const r = await runGit(args, opts);
  if (r.code !== 0) {
    throw new RemoteError(
      `${what}: git ${redactUrl(args.join(" "))} failed: ${redactUrl(r.stderr.trim())}`,
      undefined,
      "GIT",
    );
  }
  return r.stdout;
}

/** A local path given as a git remote is made absolute (InSpec expands it too). */
export function normalizeRemote(remote: string, cwd: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || /^[^/]+@[^:]+:/.test(remote)) return remote;
  const abs = isAbsolute(remote) ? remote : resolve(cwd, remote);
  return existsSync(abs) ? abs : remote;
}

const SHA_RE = /^[0-9a-f]{40}$/;

/**
 * The commit a branch, tag or ref names on the remote. Like InSpec's parse_ls_remote, a peeled
 * annotated tag (`^{}`) wins; unlike it, a branch must match `refs/heads/NAME` and a tag
 * `refs/tags/NAME` exactly, so `v1` never picks `refs/tags/xv1`.
 */
export async function pinRef(
  remote: string,
  want: { branch?: string; tag?: string; ref?: string },
  opts: GitOptions = {},
): Promise<string> {
  if (want.ref && SHA_RE.test(want.ref.toLowerCase())) return want.ref.toLowerCase();
  const name = want.branch ?? want.tag ?? want.ref;
  const patterns = name === undefined ? ["HEAD"] : [name, `${name}^{}`];
  const out = await gitOk(["ls-remote", "--", remote, ...patterns], `git source ${redactUrl(remote)}`, opts);
  const pairs = out
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t") as [string, string]);
  const find = (full: string) => pairs.find(([, r]) => r === full)?.[0];
  let sha: string | undefined;
  if (name === undefined) sha = find("HEAD");
  else if (want.branch) sha = find(`refs/heads/${name}`);
  else if (want.tag) sha = find(`refs/tags/${name}^{}`) ?? find(`refs/tags/${name}`);
  else {
    sha =
      find(name) ??
      find(`refs/tags/${name}^{}`) ??
      find(`refs/tags/${name}`) ??
      find(`refs/heads/${name}`) ??
      find(`${name}^{}`);
  }
  if (!sha) {
    const what = want.branch ? `branch ${name}` : want.tag ? `tag ${name}` : name ? `ref ${name}` : "HEAD";
    throw new RemoteError(
      `git source ${redactUrl(remote)}: unable to resolve ${what} to a specific git commit`,
      undefined,
      "GIT_REF_NOT_FOUND",
    );
  }
  return sha;
}

/**
 * Check out `commit` of `remote` into `dir` (which must not exist or be empty). Fetches only that
 * commit (`--depth 1`) when the server allows it, else falls back to a full clone (dumb HTTP
 * servers, servers refusing unadvertised objects) and checks the commit out.
 */
export async function checkoutCommit(
  remote: string,
  commit: string,
  dir: string,
  opts: GitOptions & { shortRef?: string } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const what = `git source ${redactUrl(remote)}`;
  await gitOk(["init", "-q", dir], what, opts);
  await gitOk(["remote", "add", "origin", remote], what, { ...opts, cwd: dir });
  const shallow = await runGit(["fetch", "-q", "--depth", "1", "origin", commit], { ...opts, cwd: dir });
  if (shallow.code !== 0) {
    await gitOk(["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"], what, {
      ...opts,
      cwd: dir,
    });
  }
  const target = SHA_RE.test(commit) ? commit : (opts.shortRef ?? commit);
  await gitOk(["checkout", "-q", "--detach", target], what, { ...opts, cwd: dir });
  const head = (await gitOk(["rev-parse", "HEAD"], what, { ...opts, cwd: dir })).trim();
  if (SHA_RE.test(commit) && head !== commit) {
    throw new RemoteError(`${what}: checked out ${head}, expected ${commit}`, undefined, "GIT");
  }
}

/** Resolve an abbreviated commit by a full clone (ls-remote cannot see commits that no ref names). */
export async function resolveShortSha(
  remote: string,
  short: string,
  dir: string,
  opts: GitOptions = {},
): Promise<string> {
  const what = `git source ${redactUrl(remote)}`;
  await mkdir(dir, { recursive: true });
  await gitOk(["init", "-q", dir], what, opts);
  await gitOk(["remote", "add", "origin", remote], what, { ...opts, cwd: dir });
  await gitOk(["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"], what, {
    ...opts,
    cwd: dir,
  });
  const r = await runGit(["rev-parse", "--verify", "--quiet", `${short}^{commit}`], { ...opts, cwd: dir });
  const sha = r.stdout.trim();
  if (r.code !== 0 || !SHA_RE.test(sha)) {
    throw new ConfigError(
      `git source ${redactUrl(remote)}: ref ${short} is not a branch, tag or commit of the repository`,
    );
  }
  return sha;
}

export { redactUrl, SHA_RE };
