import { type Progress, StreamProgress, silentProgress } from "../pipeline/progress.js";

export type ClosableProgress = Progress & { close(err?: unknown): Promise<void> };

/**
 * The progress display for a command: a listr2 task list on an interactive terminal, plain lines
 * on stderr otherwise (CI, pipes, logs), nothing with --json or when stdout carries the bundle.
 */
export async function progressFor(
  mode: "auto" | "silent",
  phases: { key: string; title: string }[],
): Promise<ClosableProgress> {
  if (mode === "silent") return { ...silentProgress, close: async () => {} };
  if (process.stderr.isTTY && !process.env.CI) {
    const [listr, { ListrProgress }] = await Promise.all([
      import("listr2"),
      import("../pipeline/progress.js"),
    ]);
    return new ListrProgress(phases, listr);
  }
  const plain = new StreamProgress(process.stderr, { plain: true });
  return Object.assign(plain, {
    close: async () => {
      plain.finish();
    },
  });
}
