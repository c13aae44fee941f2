/**
 * Git repositories for the git-over-HTTP test server: built in a temporary work tree, pushed into a
 * bare repository under AIRGAP_TEST_GIT_ROOT, served read-only at AIRGAP_TEST_GIT_URL/<name>.git.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { needEnv } from "./env.js";

const run = promisify(execFile);

/** Deterministic identity and no user or system config, so commits work on a fresh machine. */
export const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: "airgap test",
  GIT_AUTHOR_EMAIL: "test@airgap.invalid",
  GIT_COMMITTER_NAME: "airgap test",
  GIT_COMMITTER_EMAIL: "test@airgap.invalid",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_TERMINAL_PROMPT: "0",
};

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", args, { cwd, env: GIT_ENV, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

export interface GitRevision {
  /** Files of this commit: path → content. */
  files: Record<string, string | Buffer>;
  message?: string;
  /** Tags on this commit (lightweight unless `annotated`). */
  tags?: string[];
  annotated?: boolean;
}

export interface TestGitRepo {
  name: string;
  /** Clone URL: AIRGAP_TEST_GIT_URL/<name>.git */
  url: string;
  /** Path of the bare repository on disk. */
  bare: string;
  /** Commit ids, one per revision, in order. */
  commits: string[];
  branch: string;
}

/**
 * Create `<name>.git` under the git root with one commit per revision (each revision's files replace
 * the previous tree), tags where asked, on `branch` (default main).
 */
export async function makeGitRepo(
  name: string,
  revisions: GitRevision[],
  opts: { branch?: string } = {},
): Promise<TestGitRepo> {
  const branch = opts.branch ?? "main";
  const bare = path.join(needEnv("AIRGAP_TEST_GIT_ROOT"), `${name}.git`);
  const work = await mkdtemp(path.join(tmpdir(), "airgap-git-"));
  try {
    await git(work, "init", "-q", "-b", branch);
    const commits: string[] = [];
    for (const [i, rev] of revisions.entries()) {
      await git(work, "rm", "-rq", "--ignore-unmatch", ".");
      for (const [file, content] of Object.entries(rev.files)) {
        const full = path.join(work, file);
        await mkdir(path.dirname(full), { recursive: true });
        await writeFile(full, content);
      }
      await git(work, "add", "-A");
      await git(work, "commit", "-q", "--allow-empty", "-m", rev.message ?? `revision ${i + 1}`);
      for (const tag of rev.tags ?? []) {
        if (rev.annotated) await git(work, "tag", "-a", tag, "-m", tag);
        else await git(work, "tag", tag);
      }
      commits.push(await git(work, "rev-parse", "HEAD"));
    }
    await git(work, "init", "-q", "--bare", "-b", branch, bare);
    await git(work, "push", "-q", bare, `${branch}:${branch}`, "--tags");
    // Dumb-protocol clients need this; smart HTTP does not, but it is cheap.
    await git(bare, "update-server-info");
    return { name, url: `${needEnv("AIRGAP_TEST_GIT_URL")}/${name}.git`, bare, commits, branch };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
