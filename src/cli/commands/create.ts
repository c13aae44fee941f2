import { readFile } from "node:fs/promises";
import { isS3Url, parseS3Url } from "../../bundle/archive/s3-url.js";
import { splitSize } from "../../bundle/archive/writer.js";
import { loadBundleConfig } from "../../config/load.js";
import { IntegrityError, UsageError } from "../../errors.js";
import { createBundle, defaultCacheDir } from "../../pipeline/create.js";
import { makeSigner } from "../../pipeline/signing.js";
import {
  assertInputsReadable,
  assertOutputWritable,
  type NamedInput,
  type S3Flags,
  s3OptionsFrom,
} from "../inputs.js";
import { onInterrupt } from "../interrupt.js";
import { humanBytes, printJson, printLine } from "../output.js";
import { progressFor } from "../progress.js";
import { assertOutputFree, outputTarget } from "./target.js";

export interface CreateFlags extends S3Flags {
  config: string;
  output: string;
  key?: string;
  platform?: string;
  since?: string;
  split?: string;
  compress?: "zstd" | "none";
  cache?: string;
  concurrency?: number;
  caFile: string[];
  dryRun?: boolean;
  offline?: boolean;
  allowUnpinned?: boolean;
  json?: boolean;
  force?: boolean;
}

export async function runCreate(flags: CreateFlags): Promise<void> {
  if (flags.offline && !flags.dryRun) {
    throw new UsageError("--offline makes a plan only: add --dry-run (a bundle needs the network)");
  }
  const { config, raw } = await loadBundleConfig(flags.config);
  const output = outputTarget(flags.output, flags.compress, flags.split ? splitSize(flags.split) : undefined);
  const inputs: NamedInput[] = [
    ...(flags.key ? [{ file: flags.key, what: "the signing key (--key)" }] : []),
    ...flags.caFile.map((file) => ({ file, what: "the CA certificate (--ca-file)" })),
    ...config.registries.flatMap((r) =>
      (["ca", "cert", "key"] as const).flatMap((k) =>
        r[k]
          ? [{ file: r[k], what: `the ${k} of registry ${r.host} (registries[].${k} in ${config.file})` }]
          : [],
      ),
    ),
    ...config.verify.map((v) => ({
      file: v.key,
      what: `the public key of verify rule "${v.match}" (in ${config.file})`,
    })),
    ...config.profiles.flatMap((p) =>
      p.type === "path" ? [{ file: p.path, what: `profile path (in ${config.file})`, folderOk: true }] : [],
    ),
  ];
  await assertInputsReadable(inputs);
  const s3 = s3OptionsFrom(flags);
  // checked in a dry run too, as local outputs are
  if (isS3Url(output.path)) parseS3Url(output.path);
  if (!flags.dryRun) {
    assertOutputFree(output, Boolean(flags.force));
    if (isS3Url(output.path)) {
      const { S3BundleOutput } = await import("../../bundle/archive/s3.js");
      await new S3BundleOutput(output.path, s3).preflight(
        output.splitSize !== undefined,
        Boolean(flags.force),
      );
    } else if (output.path !== "-") {
      await assertOutputWritable(output.path, "the output", output.format === "dir");
    }
  }
  const sign = flags.key && !flags.dryRun ? await makeSigner(flags.key) : undefined;
  const progress = await progressFor(flags.json || output.path === "-" || flags.dryRun ? "silent" : "auto", [
    { key: "charts", title: "Resolve and package charts" },
    { key: "resolving", title: "Resolve images to digests" },
    { key: "pulling", title: "Pull into the cache" },
    { key: "profiles", title: "Resolve and vendor profiles" },
    { key: "files", title: "Download files" },
    { key: "gems", title: "Resolve and download gems" },
    { key: "writing", title: "Write the bundle" },
  ]);
  const platforms = flags.platform
    ? flags.platform
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean)
    : undefined;
  const interrupt = onInterrupt(
    "rerun the same command to resume: the cache keeps every blob that was pulled and verified",
    Boolean(flags.json),
  );
  try {
    const result = await createBundle({
      config,
      configText: raw,
      output,
      cacheDir: flags.cache ?? defaultCacheDir(),
      platforms,
      concurrency: flags.concurrency,
      caFiles: await Promise.all(
        flags.caFile.map(async (f) => {
          await readFile(f);
          return f;
        }),
      ),
      dryRun: flags.dryRun,
      offline: Boolean(flags.offline),
      since: flags.since,
      allowUnpinned: Boolean(flags.allowUnpinned),
      overwrite: Boolean(flags.force),
      s3,
      sign,
      checkPolicy:
        config.verify.length > 0
          ? (await import("../../pipeline/policy.js")).checkImagePolicy(config.verify)
          : undefined,
      progress,
      signal: interrupt.signal,
    });
    // Work that ends early on an abort may return rather than throw (a verification that saw its
    // reads stop): the interruption is still what happened.
    interrupt.signal.throwIfAborted();
    await progress.close();
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    if (flags.json) {
      printJson({
        dryRun: Boolean(flags.dryRun),
        output: result.output?.paths ?? [],
        plan: result.plan,
        totals: result.inventory?.totals,
        stats: result.stats,
        warnings: result.warnings,
        ...(result.notes ? { notes: result.notes } : {}),
      });
      return;
    }
    const out = process.stdout;
    if (flags.dryRun)
      out.write(flags.offline ? "plan (offline: nothing fetched):\n" : "plan (nothing pulled):\n");
    for (const p of flags.dryRun ? result.plan : []) {
      const state = flags.offline
        ? p.needsNetwork
          ? "needs the network to pin"
          : "pinned by the config"
        : p.cached
          ? "cached"
          : `${humanBytes(p.size - p.cachedBytes)} to pull`;
      printLine(
        `  ${p.kind}  ${p.name}  ${p.digest}  ${p.platforms.join(",") || "-"}  ${flags.offline ? "" : `${humanBytes(p.size)}  `}${state}`,
        out,
      );
    }
    for (const n of result.notes ?? []) process.stderr.write(`${n}\n`);
    if (!flags.dryRun && result.inventory) {
      const t = result.inventory.totals;
      process.stderr.write(
        `wrote ${result.output?.paths.join(", ")}: ${t.items} items, ${t.blobs} blobs, ${humanBytes(t.bytes)}; pulled ${humanBytes(result.stats.pulledBytes)} in ${result.stats.seconds.toFixed(1)}s${retryNote(result.stats)}${sign ? "; signed" : "; unsigned"}\n`,
      );
    }
  } catch (err) {
    const reason = interrupt.reason(err);
    await progress.close(reason);
    if (
      flags.dryRun &&
      !flags.offline &&
      !(reason instanceof UsageError) &&
      !(reason instanceof IntegrityError)
    ) {
      process.stderr.write(
        "note: --dry-run --offline lists the plan from the config alone, with no network\n",
      );
    }
    throw reason;
  } finally {
    interrupt.dispose();
  }
}

/** " (3 retries, 2 resumed)" when the network needed them; nothing on a clean run. */
function retryNote(s: { retries: number; resumes: number; restarts: number }): string {
  if (s.retries === 0) return "";
  const parts = [`${s.retries} ${s.retries === 1 ? "retry" : "retries"}`];
  if (s.resumes > 0) parts.push(`${s.resumes} resumed`);
  if (s.restarts > 0) parts.push(`${s.restarts} restarted`);
  return ` (${parts.join(", ")})`;
}
