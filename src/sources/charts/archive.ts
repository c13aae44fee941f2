/**
 * Reading a packaged chart (.tgz) as Helm's loader does (pkg/chart/loader/archive.go), but only the
 * parts airgap needs: Chart.yaml, requirements.yaml, values.yaml of the chart and of every subchart,
 * whether subcharts are nested archives (`charts/DEP-1.0.0.tgz`) or folders (`charts/DEP/`, as
 * `helm package` writes them). Sizes are capped as Helm caps them; names are checked the same way.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar";
import { IntegrityError } from "../../errors.js";
import {
  type ChartMetadata,
  chartMetadata,
  MAX_CHART_FILE_BYTES,
  parseChartYaml,
  parseYamlMapping,
} from "./chart-yaml.js";
import { MAX_CHART_BYTES } from "./package.js";

export interface ChartTree {
  metadata: ChartMetadata;
  /** values.yaml as parsed ({} when the chart has none). */
  values: Record<string, unknown>;
  /** Subcharts found in charts/, by their own chart name. */
  subcharts: ChartTree[];
}

const WANTED = /(^|\/)(Chart\.yaml|requirements\.yaml|values\.yaml)$|(^|\/)charts\/[^/]+\.tgz$/;

/** The files of an archive that matter for metadata and values, by path (top folder included). */
async function readEntries(source: string | Buffer, label: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  let total = 0;
  let failure: Error | undefined;
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      const path = entry.path.replace(/^\.\//, "");
      if (path.split("/").includes("..") || path.startsWith("/")) {
        failure ??= new IntegrityError("PATH_ESCAPE", `${label}: entry ${path} leaves the chart`, label);
      }
      total += entry.size;
      if (total > MAX_CHART_BYTES) {
        failure ??= new IntegrityError(
          "MALFORMED",
          `${label} unpacks to more than Helm's 100 MiB limit`,
          label,
        );
      }
      const keep = entry.type === "File" && WANTED.test(path) && !failure;
      if (!keep) {
        entry.resume();
        return;
      }
      const limit = path.endsWith(".tgz") ? MAX_CHART_BYTES : MAX_CHART_FILE_BYTES;
      if (entry.size > limit) {
        failure ??= new IntegrityError("MALFORMED", `${label}: ${path} is over Helm's size limit`, label);
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      entry.on("end", () => files.set(path, Buffer.concat(chunks)));
    },
  });
  const input = typeof source === "string" ? createReadStream(source) : Readable.from([source]);
  try {
    await pipeline(input, parser);
  } catch (err) {
    throw new IntegrityError(
      "MALFORMED",
      `${label} is not a readable chart archive: ${(err as Error).message}`,
      label,
      {
        cause: err,
      },
    );
  }
  if (failure) throw failure;
  return files;
}

function stripBom(b: Buffer): string {
  const s = b.toString("utf8");
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

function treeAt(
  files: Map<string, Buffer>,
  prefix: string,
  label: string,
  nested: Map<string, ChartTree>,
): ChartTree {
  const chartYaml = files.get(`${prefix}Chart.yaml`);
  if (!chartYaml) throw new IntegrityError("MALFORMED", `${label}: ${prefix}Chart.yaml is missing`, label);
  const raw = parseChartYaml(stripBom(chartYaml), `${label}:${prefix}Chart.yaml`);
  const req = files.get(`${prefix}requirements.yaml`);
  const metadata = chartMetadata(
    raw,
    `${label}:${prefix}Chart.yaml`,
    req ? parseChartYaml(stripBom(req), `${label}:${prefix}requirements.yaml`) : undefined,
  );
  const valuesBytes = files.get(`${prefix}values.yaml`);
  const values = valuesBytes ? parseYamlMapping(stripBom(valuesBytes), `${label}:${prefix}values.yaml`) : {};
  const subcharts: ChartTree[] = [];
  const seen = new Set<string>();
  for (const path of [...files.keys()].sort()) {
    if (!path.startsWith(`${prefix}charts/`)) continue;
    const rest = path.slice(prefix.length + "charts/".length);
    const first = rest.split("/")[0]!;
    // Helm skips names starting with "_" or "." in charts/
    if (seen.has(first) || first.startsWith("_") || first.startsWith(".")) continue;
    if (rest === first && first.endsWith(".tgz")) {
      seen.add(first);
      const sub = nested.get(path);
      if (sub) subcharts.push(sub);
    } else if (rest === `${first}/Chart.yaml`) {
      seen.add(first);
      subcharts.push(treeAt(files, `${prefix}charts/${first}/`, label, nested));
    }
  }
  return { metadata, values, subcharts };
}

/** Read a packaged chart (file path or bytes) into its metadata/values tree, subcharts included. */
export async function readChartArchive(
  source: string | Buffer,
  label: string,
  depth = 0,
): Promise<ChartTree> {
  if (depth > 16) throw new IntegrityError("MALFORMED", `${label}: subcharts nested too deeply`, label);
  const files = await readEntries(source, label);
  const tops = new Set([...files.keys()].map((p) => p.split("/")[0]));
  const top = [...files.keys()].find((p) => /^[^/]+\/Chart\.yaml$/.test(p));
  if (!top || tops.size !== 1) {
    throw new IntegrityError(
      "MALFORMED",
      `${label}: a chart archive holds one folder with Chart.yaml`,
      label,
    );
  }
  const prefix = top.slice(0, -"Chart.yaml".length);
  const nested = new Map<string, ChartTree>();
  for (const [path, data] of files) {
    if (path.endsWith(".tgz")) nested.set(path, await readChartArchive(data, `${label}:${path}`, depth + 1));
  }
  return treeAt(files, prefix, label, nested);
}
