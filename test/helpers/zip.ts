/**
 * Zip archives written byte by byte, so tests can build what no zip tool writes: entries that share
 * one compressed stream, sizes that lie, names that climb out, links.
 */
import { crc32, deflateRawSync } from "node:zlib";

export interface ZipEntrySpec {
  name: string;
  /** Bytes as stored in the archive (already deflated when method is 8). */
  data: Buffer;
  method: 0 | 8;
  crc: number;
  size: number;
  /** Unix mode, e.g. 0o100644, 0o120777 for a link. */
  mode?: number;
}

/**
 * A zip written byte by byte, so tests can build what no zip tool writes: entries that share one
 * local record (`shareFirst`), sizes that lie.
 */
export function buildZip(entries: ZipEntrySpec[], opts: { shareFirst?: boolean } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  const offsets: number[] = [];
  for (const [i, e] of entries.entries()) {
    const name = Buffer.from(e.name);
    if (opts.shareFirst && i > 0) {
      offsets.push(offsets[0]!);
      continue;
    }
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(0x0800, 6);
    h.writeUInt16LE(e.method, 8);
    h.writeUInt16LE(0x21, 12);
    h.writeUInt32LE(e.crc >>> 0, 14);
    h.writeUInt32LE(e.data.length, 18);
    h.writeUInt32LE(e.size, 22);
    h.writeUInt16LE(name.length, 26);
    offsets.push(offset);
    locals.push(h, name, e.data);
    offset += 30 + name.length + e.data.length;
  }
  for (const [i, e] of entries.entries()) {
    const name = Buffer.from(e.name);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE((3 << 8) | 20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(e.method, 10);
    c.writeUInt16LE(0x21, 14);
    c.writeUInt32LE(e.crc >>> 0, 16);
    c.writeUInt32LE(e.data.length, 20);
    c.writeUInt32LE(e.size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    c.writeUInt32LE(offsets[i]!, 42);
    centrals.push(c, name);
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

export function stored(name: string, content: string | Buffer, mode?: number): ZipEntrySpec {
  const data = Buffer.from(content);
  return { name, data, method: 0, crc: crc32(data), size: data.length, ...(mode ? { mode } : {}) };
}

export function deflated(name: string, content: Buffer): ZipEntrySpec {
  return {
    name,
    data: deflateRawSync(content, { level: 9 }),
    method: 8,
    crc: crc32(content),
    size: content.length,
  };
}
