/**
 * How much of a bundle's metadata any command reads into memory. bundle.json, index.json and
 * SHA256SUMS are read whole (they are parsed as one document), so each is refused beyond this, on
 * every path (verify, import, inspect, diff, create --since, serve), before it is parsed or shown.
 * 64 MiB holds the inventory of tens of thousands of items.
 */
export const METADATA_MAX_BYTES = 64 * 1024 * 1024;

/** "64 MiB", "4096 bytes": a limit as people read it. */
export function describeLimit(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/** The refusal of an oversized metadata file, one wording everywhere. */
export function overLimitMessage(path: string, size: number | undefined, max: number): string {
  return `${path}${size === undefined ? "" : ` is ${size} bytes,`} over the ${describeLimit(max)} limit for bundle metadata; refusing to read it`;
}
