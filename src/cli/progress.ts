import { type Progress, StreamProgress, silentProgress } from "../pipeline/progress.js";
import { forTerminal } from "./terminal.js";

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
    return safeForTerminal(new ListrProgress(phases, listr));
  }
  const plain = new StreamProgress(process.stderr, { plain: true });
  return safeForTerminal(
    Object.assign(plain, {
      close: async () => {
        plain.finish();
      },
    }),
  );
}

/**
 * Progress lines quote source URLs, names and remote messages: each passes through forTerminal
 * (secrets redacted, control characters escaped) before any display sees it.
 */
function safeForTerminal(p: ClosableProgress): ClosableProgress {
  // bytes() runs for every chunk of every transfer, always naming one of a few items in flight.
  const cleanItems = new Map<string, string>();
  const cleanItem = (item: string): string => {
    let clean = cleanItems.get(item);
    if (clean === undefined) {
      if (cleanItems.size >= 256) cleanItems.clear();
      clean = forTerminal(item);
      cleanItems.set(item, clean);
    }
    return clean;
  };
  return {
    phase: (name, total) => p.phase(forTerminal(name), total),
    resolved: (name, digest) => p.resolved(forTerminal(name), forTerminal(digest)),
    expect: (totalBytes) => p.expect(totalBytes),
    bytes: (item, n) => p.bytes(cleanItem(item), n),
    skipped: (item, n) => p.skipped(forTerminal(item), n),
    itemDone: (name) => p.itemDone(forTerminal(name)),
    info: (message) => p.info(forTerminal(message)),
    finish: () => p.finish(),
    close: (err) => p.close(err),
  };
}
