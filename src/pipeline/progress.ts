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

function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
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
