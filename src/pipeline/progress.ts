/**
 * Progress of long work. On a TTY a status line is redrawn (items, bytes, rate, ETA); otherwise,
 * and with --json, plain lines go to stderr so logs and scripts stay readable.
 */
export interface Progress {
  phase(name: string, totalBytes: number): void;
  resolved(name: string, digest: string): void;
  bytes(item: string, n: number): void;
  itemDone(name: string): void;
  info(message: string): void;
  finish(): void;
}

export const silentProgress: Progress = {
  phase() {},
  resolved() {},
  bytes() {},
  itemDone() {},
  info() {},
  finish() {},
};

export function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

export class StreamProgress implements Progress {
  private phaseName = "";
  private total = 0;
  private done = 0;
  private started = Date.now();
  private items = 0;
  private lastDraw = 0;
  private lastPlain = 0;
  private readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    opts: { plain?: boolean } = {},
  ) {
    this.tty = !opts.plain && Boolean(out.isTTY) && !process.env.CI;
  }

  phase(name: string, totalBytes: number): void {
    this.clear();
    this.phaseName = name;
    this.total = totalBytes;
    this.done = 0;
    this.started = Date.now();
    this.out.write(`${name}${totalBytes > 0 ? ` ${human(totalBytes)}` : ""}…\n`);
  }

  resolved(name: string, digest: string): void {
    this.line(`  ${name} → ${digest}`);
  }

  bytes(_item: string, n: number): void {
    this.done += n;
    const now = Date.now();
    if (this.tty && now - this.lastDraw > 100) {
      this.lastDraw = now;
      this.draw();
    } else if (!this.tty && now - this.lastPlain > 5000) {
      this.lastPlain = now;
      this.out.write(`  ${this.status()}\n`);
    }
  }

  itemDone(name: string): void {
    this.items++;
    this.line(`  done ${name}`);
  }

  info(message: string): void {
    this.line(message);
  }

  finish(): void {
    this.clear();
  }

  private status(): string {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = this.done / secs;
    const parts = [`${this.phaseName}: ${human(this.done)}`];
    if (this.total > 0) parts[0] += ` / ${human(this.total)}`;
    parts.push(`${human(rate)}/s`);
    if (this.total > this.done && rate > 0) parts.push(`ETA ${Math.ceil((this.total - this.done) / rate)}s`);
    if (this.items > 0) parts.push(`${this.items} items done`);
    return parts.join("  ");
  }

  private draw(): void {
    this.out.write(`\r\x1b[2K${this.status()}`);
  }

  private clear(): void {
    if (this.tty) this.out.write("\r\x1b[2K");
  }

  private line(text: string): void {
    this.clear();
    this.out.write(`${text}\n`);
    if (this.tty) this.draw();
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
  started: boolean;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject, started: false };
}

/**
 * Progress on a terminal as a listr2 task list: one task per phase, its title showing items done,
 * bytes against the total, rate and ETA, and the items as they finish. Phases are named up front;
 * a phase that never starts is shown as skipped.
 */
export class ListrProgress implements Progress {
  private readonly phases = new Map<
    string,
    Deferred & { title: string; total: number; done: number; start: number; items: string[] }
  >();
  private current?: string;
  private readonly run: Promise<unknown>;

  constructor(names: { key: string; title: string }[], listr: typeof import("listr2")) {
    for (const { key, title } of names)
      this.phases.set(key, { ...deferred(), title, total: 0, done: 0, start: 0, items: [] });
    const tasks = [...this.phases.entries()].map(([key, ph]) => ({
      title: ph.title,
      task: async (_ctx: unknown, task: { title: string; output: string; skip: (m?: string) => void }) => {
        const timer = setInterval(() => {
          if (!ph.started) return;
          task.title = `${ph.title}  ${this.status(key)}`;
          task.output = ph.items.slice(-3).join("\n");
        }, 150);
        try {
          await ph.promise;
        } finally {
          clearInterval(timer);
        }
        if (!ph.started) task.skip(`${ph.title}: nothing to do`);
        else task.title = `${ph.title}  ${this.status(key, true)}`;
      },
    }));
    this.run = new listr.Listr(tasks, {
      concurrent: false,
      exitOnError: true,
      rendererOptions: { collapseSubtasks: false },
    }).run();
    this.run.catch(() => {});
  }

  private status(key: string, final = false): string {
    const ph = this.phases.get(key)!;
    const secs = Math.max((Date.now() - ph.start) / 1000, 0.001);
    const rate = ph.done / secs;
    const parts: string[] = [];
    if (ph.items.length > 0) parts.push(`${ph.items.length} done`);
    if (ph.done > 0 || ph.total > 0)
      parts.push(ph.total > 0 ? `${human(ph.done)} / ${human(ph.total)}` : human(ph.done));
    if (ph.done > 0) parts.push(`${human(rate)}/s`);
    if (!final && ph.total > ph.done && rate > 0)
      parts.push(`ETA ${Math.ceil((ph.total - ph.done) / rate)}s`);
    if (final) parts.push(`${secs.toFixed(1)}s`);
    return parts.join("  ");
  }

  phase(name: string, totalBytes: number): void {
    const key = [...this.phases.keys()].find((k) => name.startsWith(k)) ?? name;
    // Every phase before this one is over.
    for (const [k, ph] of this.phases) {
      if (k === key) break;
      ph.resolve();
    }
    const ph = this.phases.get(key);
    if (!ph) return;
    this.current = key;
    ph.started = true;
    ph.start = Date.now();
    ph.total = totalBytes;
  }

  resolved(name: string, digest: string): void {
    this.item(`${name} → ${digest.slice(0, 19)}`);
  }

  bytes(_item: string, n: number): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    if (ph) ph.done += n;
  }

  itemDone(name: string): void {
    this.item(name);
  }

  info(message: string): void {
    this.item(message.trim());
  }

  private item(text: string): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    if (ph) ph.items.push(text);
  }

  finish(): void {
    for (const ph of this.phases.values()) ph.resolve();
  }

  /** Stop rendering; with an error, the current phase is shown as failed. */
  async close(err?: unknown): Promise<void> {
    if (err !== undefined && this.current) this.phases.get(this.current)?.reject(err);
    this.finish();
    await this.run.catch(() => {});
  }
}
