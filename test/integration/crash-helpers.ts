/**
 * Shared steps of the crash tests: run the CLI and stop it with a signal at a chosen moment, and check
 * what a stopped run left on disk (the content cache, the output folder).
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type CliResult, runCli } from "../helpers/cli.js";

export interface StoppedRun {
  result: CliResult;
  /** The signal was sent before the run ended on its own. */
  stopped: boolean;
  /** Milliseconds from start to the signal (or to the end, when not stopped). */
  atMs: number;
  /** Milliseconds from the signal to the process's exit. */
  exitMs: number;
}

/**
 * Run the CLI and send `signal` (`times` times, 10 ms apart) as soon as `when(elapsedMs)` says so (polled
 * every 5 ms). A run that ends before that is reported with stopped: false.
 */
export async function runAndStop(
  args: string[],
  signal: NodeJS.Signals,
  when: (elapsedMs: number) => boolean,
  env: NodeJS.ProcessEnv = {},
  times = 1,
): Promise<StoppedRun> {
  let child: ChildProcess | undefined;
  const start = Date.now();
  let ended = false;
  let sentAt = 0;
  const run = runCli(args, {
    env,
    onSpawn: (c) => {
      child = c;
    },
  });
  const endedAt = run.then(() => {
    ended = true;
    return Date.now();
  });
  while (!ended) {
    if (when(Date.now() - start)) {
      sentAt = Date.now();
      child?.kill(signal);
      for (let i = 1; i < times; i++) {
        await new Promise((r) => setTimeout(r, 10));
        child?.kill(signal);
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const result = await run;
  const end = await endedAt;
  const stopped = sentAt > 0 && result.code !== 0;
  return { result, stopped, atMs: (stopped ? sentAt : end) - start, exitMs: stopped ? end - sentAt : 0 };
}

/** Files of a folder (recursively) whose name holds `.partial-`: temporary files of a writer. */
export function partialFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(d, name);
      if (name.includes(".partial-")) out.push(path);
      else if (statSync(path).isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * Hash every blob file of a content cache (an OCI layout): each file named by a digest must hold
 * exactly those bytes. Returns the names that do not, and the temporary files found.
 */
export function auditCache(cache: string): { wrong: string[]; partial: string[]; blobs: number } {
  const dir = join(cache, "blobs", "sha256");
  const wrong: string[] = [];
  const partial: string[] = [];
  let blobs = 0;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return { wrong, partial, blobs };
  }
  for (const name of names) {
    if (name.includes(".partial-")) {
      partial.push(name);
      continue;
    }
    blobs++;
    const hex = createHash("sha256")
      .update(readFileSync(join(dir, name)))
      .digest("hex");
    if (hex !== name) wrong.push(name);
  }
  // index.json is written by rename only: whatever is there parses.
  try {
    JSON.parse(readFileSync(join(cache, "index.json"), "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") wrong.push(`index.json: ${String(err)}`);
  }
  return { wrong, partial: partial.sort(), blobs };
}

/** Blob files (by hex) present in a cache. */
export function cachedBlobs(cache: string): string[] {
  try {
    return readdirSync(join(cache, "blobs", "sha256")).filter((n) => !n.includes(".partial-"));
  } catch {
    return [];
  }
}

/** The last non-empty line of stderr (the one-line message of a failed run). */
export function lastLine(stderr: string): string {
  return (
    stderr
      .trim()
      .split("\n")
      .filter((l) => l.trim() !== "")
      .at(-1) ?? ""
  );
}
