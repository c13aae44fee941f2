/**
 * Progress of long work. On a TTY a status line is redrawn (items, bytes, rate, ETA); otherwise,
 * and with --json, plain lines go to stderr so logs and scripts stay readable.
 *
 * Every figure shown is what really moved: `bytes` is called with the byte count of each chunk read,
 * hashed, uploaded or written (never a running total, never an event count); rates and ETAs come
 * from the last few seconds of those bytes, and each phase ends with one line of its real totals.
 */
export interface Progress {
  /** A new phase; `totalBytes` is what it expects to move, 0 when not known yet (see `expect`). */
  phase(name: string, totalBytes: number): void;
  /** The bytes the current phase will move, once known. */
  expect(totalBytes: number): void;
  resolved(name: string, digest: string): void;
  /** `n` more bytes really moved for `item`. */
  bytes(item: string, n: number): void;
  /** `n` bytes of the expected total that need not move (the destination holds them already). */
  skipped(item: string, n: number): void;
  itemDone(name: string): void;
  info(message: string): void;
  finish(): void;
}

export const silentProgress: Progress = {
  phase() {},
  expect() {},
  resolved() {},
  bytes() {},
  skipped() {},
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

/** Below this much elapsed time a rate (and so an ETA) says nothing yet. */
const MIN_RATE_MS = 1000;
/** Rates in running lines cover this recent window, so a stall or a speed-up shows. */
const RATE_WINDOW_MS = 5000;
const SAMPLE_EVERY_MS = 200;

/**
 * The figures of one phase: bytes moved and skipped, items done, elapsed time and the recent rate.
 * Pure (the clock is injected), so what a progress line says can be tested exactly.
 */
export class ProgressMeter {
  total = 0;
  moved = 0;
  skippedBytes = 0;
  items = 0;
  started: number;
  private samples: { t: number; moved: number }[];

  constructor(
    private readonly now: () => number = Date.now,
    totalBytes = 0,
  ) {
    this.started = now();
    this.total = totalBytes;
    this.samples = [{ t: this.started, moved: 0 }];
  }

  add(n: number): void {
    this.moved += n;
    const t = this.now();
    const last = this.samples[this.samples.length - 1]!;
    if (t - last.t >= SAMPLE_EVERY_MS) this.samples.push({ t, moved: this.moved });
    while (this.samples.length > 1 && this.samples[1]!.t <= t - RATE_WINDOW_MS) this.samples.shift();
  }

  skip(n: number): void {
    this.skippedBytes += n;
  }

  /** What this phase moves in the end as far as known: never less than what already moved. */
  get expected(): number {
    return this.total > 0 ? Math.max(this.total - this.skippedBytes, this.moved) : 0;
  }

  elapsedMs(): number {
    return Math.max(this.now() - this.started, 0);
  }

  /** Bytes per second over the recent window; undefined while too little time has passed to tell. */
  recentRate(): number | undefined {
    const t = this.now();
    if (t - this.started < MIN_RATE_MS) return undefined;
    while (this.samples.length > 1 && this.samples[1]!.t <= t - RATE_WINDOW_MS) this.samples.shift();
    const base = this.samples[0]!;
    const span = (t - base.t) / 1000;
    return span > 0 ? (this.moved - base.moved) / span : undefined;
  }

  /** A running line: bytes against the expected total, recent rate, ETA, items done. */
  running(name: string): string {
    const parts = [`${name}: ${human(this.moved)}${this.expected > 0 ? ` / ${human(this.expected)}` : ""}`];
    const rate = this.recentRate();
    if (rate !== undefined) {
      parts.push(`${human(rate)}/s`);
      const left = this.expected - this.moved;
      if (left > 0 && rate > 0) parts.push(`ETA ${Math.ceil(left / rate)}s`);
    }
    if (this.items > 0) parts.push(`${this.items} ${this.items === 1 ? "item" : "items"} done`);
    if (this.skippedBytes > 0) parts.push(`${human(this.skippedBytes)} already there`);
    return parts.join("  ");
  }

  /** The closing line: what moved, in how long, at what average rate. */
  summary(name: string): string {
    const ms = this.elapsedMs();
    let text = `${name}: ${human(this.moved)}`;
    if (this.expected > this.moved) text += ` of ${human(this.expected)}`;
    text += ` in ${(ms / 1000).toFixed(1)}s`;
    if (this.moved > 0 && ms >= 100) text += ` (${human(this.moved / (ms / 1000))}/s)`;
    if (this.items > 0) text += `, ${this.items} ${this.items === 1 ? "item" : "items"}`;
    if (this.skippedBytes > 0) text += `, ${human(this.skippedBytes)} already there`;
    return text;
  }
}

export class StreamProgress implements Progress {
  private phaseName = "";
  private meter?: ProgressMeter;
  private pendingHeader: string | undefined;
  private headerTimer: ReturnType<typeof setTimeout> | undefined;
  private lastDraw = 0;
  private lastPlain = 0;
  private readonly tty: boolean;
  private readonly now: () => number;

  constructor(
    private readonly out: Pick<NodeJS.WriteStream, "write" | "isTTY"> = process.stderr,
    opts: { plain?: boolean; now?: () => number } = {},
  ) {
    this.tty = !opts.plain && Boolean(out.isTTY) && !process.env.CI;
    this.now = opts.now ?? Date.now;
  }

  phase(name: string, totalBytes: number): void {
    this.endPhase();
    this.phaseName = name;
    this.meter = new ProgressMeter(this.now, totalBytes);
    this.lastPlain = this.meter.started;
    // Announced with its first activity, or after a second without any (a stalled input still
    // says what it waits for): a command that fails at once prints only its error.
    this.pendingHeader = `${name}${totalBytes > 0 ? ` ${human(totalBytes)}` : ""}…\n`;
    clearTimeout(this.headerTimer);
    this.headerTimer = setTimeout(() => this.announce(), 1000);
    this.headerTimer.unref?.();
  }

  private announce(): void {
    clearTimeout(this.headerTimer);
    if (this.pendingHeader === undefined) return;
    this.out.write(this.pendingHeader);
    this.pendingHeader = undefined;
    clearTimeout(this.headerTimer);
  }

  expect(totalBytes: number): void {
    if (this.meter) this.meter.total = totalBytes;
  }

  resolved(name: string, digest: string): void {
    this.line(`  ${name} → ${digest}`);
  }

  bytes(_item: string, n: number): void {
    if (!this.meter) return;
    this.announce();
    this.meter.add(n);
    const now = this.now();
    if (this.tty && now - this.lastDraw > 100) {
      this.lastDraw = now;
      this.draw();
    } else if (!this.tty && now - this.lastPlain >= 5000) {
      // Plain output (logs, CI): a line every 5 s, none before the phase has run that long.
      this.lastPlain = now;
      this.out.write(`  ${this.meter.running(this.phaseName)}\n`);
    }
  }

  skipped(_item: string, n: number): void {
    this.meter?.skip(n);
  }

  itemDone(name: string): void {
    if (this.meter) this.meter.items++;
    this.line(`  done ${name}`);
  }

  info(message: string): void {
    this.line(message);
  }

  finish(): void {
    this.endPhase();
  }

  /** One line with the phase's real totals, when it moved or counted anything. */
  private endPhase(): void {
    this.clear();
    const m = this.meter;
    this.meter = undefined;
    if (m && (m.moved > 0 || m.items > 0 || m.total > 0 || m.skippedBytes > 0)) {
      this.announce();
      this.out.write(`  ${m.summary(this.phaseName)}\n`);
    }
    this.pendingHeader = undefined;
  }

  private draw(): void {
    if (this.meter) this.out.write(`\r\x1b[2K${this.meter.running(this.phaseName)}`);
  }

  private clear(): void {
    if (this.tty) this.out.write("\r\x1b[2K");
  }

  private line(text: string): void {
    this.clear();
    this.announce();
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
    Deferred & { title: string; meter: ProgressMeter; items: string[] }
  >();
  private current?: string;
  private readonly run: Promise<unknown>;

  constructor(names: { key: string; title: string }[], listr: typeof import("listr2")) {
    for (const { key, title } of names)
      this.phases.set(key, { ...deferred(), title, meter: new ProgressMeter(), items: [] });
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

  /** The meter's line without the phase name (the task title carries it). */
  private status(key: string, final = false): string {
    const ph = this.phases.get(key)!;
    const line = final ? ph.meter.summary("") : ph.meter.running("");
    return line.replace(/^: /, "");
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
    ph.meter = new ProgressMeter(Date.now, totalBytes);
  }

  expect(totalBytes: number): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    if (ph) ph.meter.total = totalBytes;
  }

  resolved(name: string, digest: string): void {
    this.item(`${name} → ${digest.slice(0, 19)}`);
  }

  bytes(_item: string, n: number): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    ph?.meter.add(n);
  }

  skipped(_item: string, n: number): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    ph?.meter.skip(n);
  }

  itemDone(name: string): void {
    const ph = this.current ? this.phases.get(this.current) : undefined;
    if (ph) ph.meter.items++;
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
