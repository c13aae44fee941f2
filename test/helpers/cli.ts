import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = `${ROOT}dist/bin/airgap.mjs`;

export interface CliResult {
  code: number;
  stdout: string;
  /** stdout as bytes (a bundle written with -o -). */
  stdoutBytes: Buffer;
  stderr: string;
}

/**
 * Run the built `airgap` CLI (scripts/test.sh builds before testing) the way a user does:
 * a separate process, exit code, stdout and stderr.
 */
export function runCli(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    input?: Buffer | NodeJS.ReadableStream;
    cwd?: string;
    killAfterMs?: number;
    onSpawn?: (child: ChildProcess) => void;
  } = {},
): Promise<CliResult> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    opts.onSpawn?.(child);
    let stderr = "";
    const out: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => {
      out.push(d);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    if (opts.killAfterMs !== undefined) setTimeout(() => child.kill("SIGKILL"), opts.killAfterMs);
    child.on("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code: code ?? (signal ? 137 : 1),
        stdout: stdoutBytes.toString("utf8"),
        stdoutBytes,
        stderr,
      });
    });
    child.stdin.on("error", () => {});
    if (opts.input && Buffer.isBuffer(opts.input)) child.stdin.end(opts.input);
    else if (opts.input) (opts.input as NodeJS.ReadableStream).pipe(child.stdin);
    else child.stdin.end();
  });
}
